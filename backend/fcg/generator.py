"""The public generator: audio + emotion -> takes of expression (T, 64) and pose (T, 6).

T = ceil(duration * fps): a trailing partial frame is kept so the curves cover all the audio.
Take k draws its latents from numpy's Generator seeded with (seed, k), so take k is reproducible
alone and independent of how many takes were asked for.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import torch

from flowvq_shared.channels import EMOTIONS, INTENSITY_RANGE, N_EXPRESSION, emotion_index

from ..errors import BadAudio, BadRequest, NotImplementedYet
from .blinks import LID_CHANNELS, take_lids
from .phone_guide import DEFAULT_GUIDANCE, PhoneGuide, guide_takes
from .checkpoint import load_checkpoint
from .features import SAMPLE_RATE, frame_count, mel_windows
from .model import FCGModel

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "fcg_default.pt"
MAX_TAKES = 64


def load_generator(path: str | Path | None = None, device: str | None = None) -> "FCGGenerator":
    """Load a trained FCG (the shipped default when path is None)."""
    ckpt = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not ckpt.exists():
        raise NotImplementedYet(f"no trained FCG checkpoint at {ckpt}: run `flowvq train fcg --data DATASET -o {ckpt}`")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, meta, _ = load_checkpoint(ckpt, device=device)
    return FCGGenerator(model, meta, ckpt, device)


class FCGGenerator:
    def __init__(self, model: FCGModel, meta: dict, path: Path | None = None, device: str = "cpu"):
        self.model = model.eval().requires_grad_(False)
        self.meta = meta
        self.path = path
        self.device = torch.device(device)
        self.guide = PhoneGuide()  # its helper process starts with the first guided take

    @property
    def info(self) -> dict:
        c = self.model.cfg
        return {
            "name": "FCG (ExpFlow + PoseFlow)",
            "format": 1,
            "checkpoint": str(self.path) if self.path else None,
            "trained_on": self.meta.get("trained_on", "unknown"),
            "steps": int(self.meta.get("steps", 0)),
            "params": int(sum(p.numel() for p in self.model.parameters())),
            "features": f"log-mel {c.features.n_mels} bands, hop {c.features.hop}, window {c.features.n_fft}, "
                        f"{c.features.window_frames}-frame window, lookahead {c.features.lookahead_frames}, "
                        f"cmvn={c.features.cmvn}",
            "flow_steps": c.steps,
            "sampling_scale": c.sampling_scale,
            "device": str(self.device),
            "phone_guidance": self.guide.error or f"pocketsphinx phones, default {DEFAULT_GUIDANCE}",
        }

    def generate(self, audio: np.ndarray, emotion: str = "talking", intensity: float = 1.0, n_takes: int = 1,
                 seed: int = 0, fps: float = 25.0, temperature: float = 1.0,
                 reference_expression: np.ndarray | None = None, source_expression: np.ndarray | None = None,
                 progress=None, cancel=None, manifold: bool = False,
                 blinks: bool = True, phone_guidance: float = DEFAULT_GUIDANCE) -> list[tuple[np.ndarray, np.ndarray]]:
        """-> n_takes (expression (T, 64) float32, pose (T, 6) float32) with T = ceil(len/16000 * fps).

        intensity scales each frame's deviation from the neutral face (source_expression, else the
        rest face 0); reference_expression switches from sampling to emotion transfer by inversion;
        manifold=True projects each latent onto its nearest stored training latents; blinks=True
        gives each take its own blinks (fcg.blinks), untouched by intensity; phone_guidance (0-1) is
        the share of the mouth's dynamics taken from the phones pocketsphinx hears (fcg.phone_guide).
        """
        audio = np.asarray(audio)
        if audio.ndim != 1 or audio.shape[0] == 0:
            raise BadAudio(f"audio must be a non-empty 1-D 16 kHz array, got shape {audio.shape}")
        if not np.isfinite(audio).all():
            raise BadAudio("audio contains NaN or inf")
        try:
            emo = emotion_index(emotion)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        intensity = _number("intensity", intensity, *INTENSITY_RANGE)
        temperature = _number("temperature", temperature, 0.0, 3.0)
        phone_guidance = _number("phone_guidance", phone_guidance, 0.0, 1.0)
        fps = _number("fps", fps, 1.0, 240.0)
        if not isinstance(n_takes, (int, np.integer)) or not 1 <= n_takes <= MAX_TAKES:
            raise BadRequest(f"n_takes must be an integer from 1 to {MAX_TAKES}, got {n_takes!r}")
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise BadRequest(f"seed must be an integer, got {seed!r}") from None
        ref = _expression("reference_expression", reference_expression)
        src = _expression("source_expression", source_expression)
        neutral = src if src is not None else torch.zeros(N_EXPRESSION)

        if progress is not None:
            progress(0.0, "features")
        m = self.model
        with torch.no_grad():
            wav = torch.from_numpy(audio.astype(np.float32, copy=False)).to(self.device)
            mel = m.logmel(wav)
            n_frames = frame_count(audio.shape[0], fps, SAMPLE_RATE)
            windows = mel_windows(mel, n_frames, fps, m.cfg.features,
                                  extra_lookahead=m.cfg.features.inference_lead_frames)
            seed &= 0xFFFFFFFFFFFFFFFF
            rngs = [np.random.default_rng([seed, k]) for k in range(int(n_takes))]
            # recognition runs in the helper process while the flow samples
            pending = self.guide.start(audio) if phone_guidance > 0 else None
            lids = torch.from_numpy(take_lids(audio, emo, n_frames, fps, seed, int(n_takes))) if blinks else None
            with _cpu_threads(1 if self.device.type == "cpu" else None):
                exp, pose = m.sample(windows, emo, neutral, rngs, temperature=temperature, reference=ref,
                                     manifold=manifold, progress=progress, cancel=cancel)
            guided = (guide_takes(exp.float().cpu().numpy(), pending, n_frames, fps, phone_guidance)
                      if pending is not None else None)
            if guided is not None:
                exp = torch.from_numpy(guided).to(exp.device, exp.dtype)
            neutral = neutral.to(exp.device)
            exp = neutral + intensity * (exp - neutral)
            lo = torch.minimum(m.exp_lo, neutral)
            hi = neutral + max(1.0, intensity) * (m.exp_hi - neutral).clamp_min(0)
            exp = torch.maximum(torch.minimum(exp, hi), lo)
            if lids is not None:  # after sampling: the mouth stays exactly what the flow made; full closure at any intensity
                lid_idx = list(LID_CHANNELS)
                exp[..., lid_idx] = torch.maximum(exp[..., lid_idx], lids.to(exp.device, exp.dtype))
        if progress is not None:
            progress(1.0, "done")
        e, p = exp.float().cpu().numpy(), pose.float().cpu().numpy()
        return [(np.ascontiguousarray(e[k]), np.ascontiguousarray(p[k])) for k in range(int(n_takes))]


@contextlib.contextmanager
def _cpu_threads(n: int | None):
    """Sampling runs thousands of tiny ops: one thread avoids oversubscription stalls on a shared CPU."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _number(name: str, value, lo: float, hi: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or not lo <= v <= hi:
        raise BadRequest(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
    return v


def _expression(name: str, value) -> torch.Tensor | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float32)
    if arr.shape != (N_EXPRESSION,) or not np.isfinite(arr).all():
        raise BadRequest(f"{name} must be {N_EXPRESSION} finite numbers, got shape {arr.shape}")
    return torch.from_numpy(arr)


__all__ = ["DEFAULT_CHECKPOINT", "EMOTIONS", "FCGGenerator", "load_generator"]
