"""The autoregressive sampler as an explicit frame stepper: ExpFlow's and PoseFlow's inverse, one frame
at a time, each new frame pushed into its flow's rolling buffer of previous-frame tokens.

Per frame the work is ~1300 tiny ops (16 coupling transformers per flow at batch = takes), so the cost
is per-op overhead (docs/benchmarks.md has the profile). Three things keep it low:
- each flow's step is traced to TorchScript once per stepper (one per model) and kept: the trace takes
  every per-request tensor (tokens, actnorm scale and bias per frame) as an input, so one trace serves
  every emotion and every batch size (a test checks a trace made at batch 1 against eager at batch 4);
- ExpFlow and PoseFlow depend on their own past only, so their chains run on two threads (a traced call
  releases the GIL): a take costs about the slower chain, not the sum;
- sampling runs under `torch.inference_mode()` (no autograd bookkeeping per op).
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass

import torch

from ..errors import Cancelled
from ..runtime import torch_threads


@dataclass
class Chain:
    """One flow's per-request state: per-frame latents and tokens, per-step actnorm, the rolling buffer."""
    z: torch.Tensor  # (T, B, D) latents
    frame_tok: torch.Tensor  # (K, T, H) frame-context tokens (shared by the takes)
    prev_tok: torch.Tensor  # (K, B, tau, H) previous-frame tokens
    inv_scale: torch.Tensor  # (K, B, D) actnorm exp(-log_scale) per step (plan order), or (T, K, B, D)
    bias: torch.Tensor  # (K, B, D), or (T, K, B, D) when the emotion changes over time
    shift_tok: torch.Tensor  # (K, B, 1, H) tokens of the class's display, or (K, T, B, 1, H)

    @property
    def shift_per_frame(self) -> bool:
        return self.shift_tok.dim() == 5

    @property
    def per_frame(self) -> bool:
        return self.inv_scale.dim() == 4


def _step_fn(flow, plan):
    """flow + plan -> f(z, frame_tok, prev_tok, inv_scale, bias, shift_tok) -> (x, new prev_tok): no shape
    arithmetic, no per-request constants (the plan's emotion rows are inputs), so the trace is batch- and
    emotion-free. The new frame enters the context relative to the class's display (shift_tok)."""
    def step(z, frame_tok, prev_tok, inv_scale, bias, shift_tok):
        z = flow.inverse_planned(z, frame_tok[:, None, :], prev_tok, plan, inv_scale, bias)
        return z, torch.cat([prev_tok[:, :, 1:], flow.prev_tokens(z[:, None, :], plan) - shift_tok], dim=2)

    return step


class FrameStepper:
    """Traced frame steps of one model, made on first use per device and kept for the model's life."""

    def __init__(self, model):
        self.model = model
        self._traced: dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    def steps(self, device: torch.device, exp_chain: Chain, pose_chain: Chain, traced: bool = True):
        if not traced:  # weights still training: a trace would freeze them
            m = self.model
            return (_step_fn(m.exp.flow, m.exp.flow.plan(exp_chain.z.new_zeros(1, dtype=torch.long))),
                    _step_fn(m.pose.flow, m.pose.flow.plan(pose_chain.z.new_zeros(1, dtype=torch.long))))
        key = (device.type, device.index)
        with self._lock:
            if key not in self._traced:
                self._traced[key] = (self._trace(self.model.exp.flow, exp_chain),
                                     self._trace(self.model.pose.flow, pose_chain))
            return self._traced[key]

    @staticmethod
    def _trace(flow, chain: Chain):
        zeros = torch.zeros(chain.z.shape[1], dtype=torch.long, device=chain.z.device)
        fn = _step_fn(flow, flow.plan(zeros))
        scale, bias = (chain.inv_scale[0], chain.bias[0]) if chain.per_frame else (chain.inv_scale, chain.bias)
        shift = chain.shift_tok[:, 0] if chain.shift_per_frame else chain.shift_tok
        example = (chain.z[0], chain.frame_tok[:, 0], chain.prev_tok, scale, bias, shift)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about the python loop over steps
            return torch.jit.trace(fn, example, check_trace=False)

    def run(self, exp_chain: Chain, pose_chain: Chain, progress=None, cancel=None, threads: int | None = 1,
            traced: bool = True, parallel: bool = True):
        """-> expression (B, T, De), pose (B, T, Dp). parallel: both chains at once on two threads; else
        one after the other on this thread (a core left to the phone recogniser). Same numbers either way."""
        device = exp_chain.z.device
        exp_step, pose_step = self.steps(device, exp_chain, pose_chain, traced)
        t_len = exp_chain.z.shape[0]
        errors: list[BaseException] = []
        stop = threading.Event()

        def chain_loop(step, chain: Chain, out: torch.Tensor, report) -> None:
            prev = chain.prev_tok
            every = max(1, t_len // 50)
            scale, bias, shift = chain.inv_scale, chain.bias, chain.shift_tok
            try:
                with torch.inference_mode():
                    for t in range(t_len):
                        if stop.is_set():
                            return
                        if cancel is not None and cancel.is_set():
                            raise Cancelled("generation cancelled")
                        if chain.per_frame:  # the emotion changes over time: this frame's actnorm
                            scale, bias = chain.inv_scale[t], chain.bias[t]
                        if chain.shift_per_frame:
                            shift = chain.shift_tok[:, t]
                        x, prev = step(chain.z[t], chain.frame_tok[:, t], prev, scale, bias, shift)
                        out[:, t] = x
                        if report is not None and (t % every == 0 or t == t_len - 1):
                            report((t + 1) / t_len, "sampling")
            except BaseException as e:  # re-raised on the calling thread
                errors.append(e)
                stop.set()

        b = exp_chain.z.shape[1]
        out_e = torch.empty(b, t_len, exp_chain.z.shape[2], device=device)
        out_p = torch.empty(b, t_len, pose_chain.z.shape[2], device=device)
        with torch_threads(threads if device.type == "cpu" else None):
            # progress is reported from the expression chain (the slower one), on this thread
            if parallel:
                pose_thread = threading.Thread(target=chain_loop, args=(pose_step, pose_chain, out_p, None),
                                               name="flowvq-poseflow", daemon=True)
                pose_thread.start()
                chain_loop(exp_step, exp_chain, out_e, progress)
                pose_thread.join()
            else:  # progress: the first chain is the first half of "sampling"
                half = (lambda f, stage: progress(f / 2, stage)) if progress is not None else None
                chain_loop(pose_step, pose_chain, out_p, half)
                if not errors:
                    chain_loop(exp_step, exp_chain, out_e,
                               (lambda f, stage: progress(0.5 + f / 2, stage)) if progress is not None else None)
        if errors:
            raise errors[0]
        return out_e, out_p
