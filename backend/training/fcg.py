"""Training FCG on a dataset folder (training/dataset.py format): teacher-forced frames, NLL of
ExpFlow + PoseFlow, consistency loss, context dropout; tqdm progress, periodic self-describing
checkpoints, exact resume; CPU or CUDA.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..errors import BadRequest
from ..fcg.checkpoint import load_checkpoint, save_checkpoint
from ..fcg.features import LogMel
from ..fcg.model import FCGConfig, FCGModel


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch: int = 256
    lr: float = 1e-3  # the paper's 1e-4 is for days on GPUs; a short CPU run needs a larger step
    warmup: int = 100
    consistency_rows: int = 16  # frame pairs per batch that also run the reverse pass
    checkpoint_every: int = 250
    seed: int = 0
    freq_mask: int = 10  # SpecAugment-style band masking (max bands), against overfitting synthetic voices
    freq_warp: float = 0.0  # VTLP-style mel-axis warp by a factor in 1 +- this: other vocal tracts than espeak's
    grad_clip: float = 1.0
    latents: int = 2048  # training latents stored for manifold projection


def _warp_bands(windows: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """(B, W, M) mel windows, (B, 1) factors: band b takes the value at b * alpha (linear interpolation)."""
    m = windows.shape[-1]
    pos = (torch.arange(m, device=windows.device, dtype=windows.dtype)[None] * alpha).clamp(0, m - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=m - 1)
    frac = (pos - lo)[:, None, :]
    w = windows.shape[1]
    return (windows.gather(2, lo[:, None, :].expand(-1, w, -1)) * (1 - frac)
            + windows.gather(2, hi[:, None, :].expand(-1, w, -1)) * frac)


class FrameBank:
    """Every frame of a dataset in memory, with the index of its mel window in one padded mel array.

    Rows per item: tau rows of initial context (rest face, rest pose), then the item's T frames, so
    the tau previous frames of any frame are simply the tau rows before it.
    """

    def __init__(self, items, cfg: FCGConfig, device="cpu"):
        fc = cfg.features
        logmel = LogMel(fc)
        self.cfg = cfg
        mels, exps, poses, emos, centres, valid, first = [], [], [], [], [], [], []
        mel_off = row_off = 0
        pad = fc.window_frames + abs(fc.lookahead_frames) + 4
        mel_rate = fc.sample_rate / fc.hop
        self.duration = 0.0
        for it in items:
            with torch.no_grad():
                mel = logmel(torch.from_numpy(np.asarray(it.audio, dtype=np.float32)))
            floor = mel.min(0, keepdim=True).values
            mels.append(torch.cat([floor.expand(pad, -1), mel, floor.expand(pad, -1)]))
            t_len = it.expression.shape[0]
            c = np.clip(np.round(np.arange(t_len) / it.fps * mel_rate).astype(np.int64) + fc.lookahead_frames,
                        -pad + fc.window_frames, mel.shape[0] + pad - fc.window_frames)
            centres.append(np.concatenate([np.zeros(cfg.tau, np.int64), c + pad + mel_off]))
            exps.append(np.concatenate([np.zeros((cfg.tau, cfg.exp_dim), np.float32), it.expression]))
            poses.append(np.concatenate([np.zeros((cfg.tau, cfg.pose_dim), np.float32), it.pose]))
            emos.append(np.full(cfg.tau + t_len, it.emotion_index, np.int64))
            valid.append(row_off + cfg.tau + np.arange(t_len))
            first.append(np.r_[np.zeros(cfg.tau, bool), np.arange(t_len) == 0])
            mel_off += mels[-1].shape[0]
            row_off += cfg.tau + t_len
            self.duration += len(it.audio) / fc.sample_rate
        if not valid:
            raise BadRequest("the dataset has no items")
        self.mel = torch.cat(mels).to(device)
        self.centre = torch.from_numpy(np.concatenate(centres)).to(device)
        self.exp = torch.from_numpy(np.concatenate(exps)).to(device)
        self.pose = torch.from_numpy(np.concatenate(poses)).to(device)
        self.emotion = torch.from_numpy(np.concatenate(emos)).to(device)
        self.rows = torch.from_numpy(np.concatenate(valid)).to(device)
        self.is_first = torch.from_numpy(np.concatenate(first)).to(device)
        self.pair_rows = self.rows[~self.is_first[self.rows]]  # frames with a predecessor
        self.device = device

    @property
    def n_frames(self) -> int:
        return int(self.rows.shape[0])

    def batch(self, rows: torch.Tensor, g: torch.Generator | None = None, tc: TrainConfig | None = None) -> dict:
        fc = self.cfg.features
        w = fc.window_frames
        centre = self.centre[rows]
        if tc is not None and g is not None:
            centre = centre + torch.randint(-1, 2, centre.shape, generator=g).to(centre.device)  # timing jitter
        idx = centre[:, None] - w // 2 + torch.arange(w, device=rows.device)[None]
        windows = self.mel[idx]
        if tc is not None and tc.freq_mask > 0 and g is not None:
            width = torch.randint(0, tc.freq_mask + 1, (rows.shape[0], 1), generator=g).to(rows.device)
            start = (torch.rand(rows.shape[0], 1, generator=g).to(rows.device) * (fc.n_mels - width)).long()
            bands = torch.arange(fc.n_mels, device=rows.device)[None]
            keep = ~((bands >= start) & (bands < start + width))
            windows = windows * keep[:, None, :]
        if tc is not None and tc.freq_warp > 0 and g is not None:
            windows = _warp_bands(windows, 1 + (2 * torch.rand(rows.shape[0], 1, generator=g) - 1).to(rows.device)
                                  * tc.freq_warp)
        prev = rows[:, None] - self.cfg.tau + torch.arange(self.cfg.tau, device=rows.device)[None]
        return {
            "windows": windows,
            "exp": self.exp[rows],
            "pose": self.pose[rows],
            "exp_prev": self.exp[prev],
            "pose_prev": self.pose[prev],
            "emotion": self.emotion[rows],
            "source": torch.zeros(rows.shape[0], self.cfg.exp_dim, device=rows.device),
        }

    def sample_rows(self, n: int, n_pairs: int, g: torch.Generator) -> torch.Tensor:
        """n random frames; the first n_pairs also get their predecessor appended (consistency loss)."""
        pick = self.pair_rows[torch.randint(0, self.pair_rows.shape[0], (n,), generator=g).to(self.device)]
        return torch.cat([pick, pick[:n_pairs] - 1]) if n_pairs else pick


def load_items(data: str | Path):
    from .dataset import Dataset

    ds = Dataset.open(data)
    return [ds[i] for i in range(len(ds))], ds


def train(data: str | Path, out: str | Path, tc: TrainConfig = TrainConfig(), cfg: FCGConfig | None = None,
          resume: bool = False, device: str = "cpu", progress: bool = True, log=print,
          init: str | Path | None = None) -> dict:
    """Train (or resume) and write `out`; returns the final meta dict.

    init: start from another checkpoint's weights (fine-tuning; fresh optimiser and schedule)."""
    out = Path(out)
    torch.manual_seed(tc.seed)
    items, ds = load_items(data)
    start_step, train_state = 0, None
    if resume and out.exists():
        model, meta, train_state = load_checkpoint(out)
        if train_state is None:
            raise BadRequest(f"{out} has no training state to resume from")
        cfg = model.cfg
        start_step = int(train_state["step"])
    elif init is not None:
        model, init_meta, _ = load_checkpoint(init)
        cfg = model.cfg
    else:
        cfg = cfg or FCGConfig()
        model = FCGModel(cfg)
    model.to(device).train()
    t0 = time.time()
    bank = FrameBank(items, cfg, device=device)
    log(f"data: {len(items)} items, {bank.duration / 3600:.2f} h, {bank.n_frames} frames "
        f"(features in {time.time() - t0:.1f} s)")
    if start_step == 0:
        with torch.no_grad():  # the sampler clamps to the data's range
            model.exp_lo.copy_(bank.exp[bank.rows].min(0).values)
            model.exp_hi.copy_(bank.exp[bank.rows].max(0).values)
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr)
    if train_state is not None:
        opt.load_state_dict(train_state["optimizer"])
    g = torch.Generator().manual_seed(tc.seed * 1000003 + start_step)

    def lr_at(step):
        if step < tc.warmup:
            return tc.lr * (step + 1) / tc.warmup
        frac = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
        return tc.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))

    meta = {"trained_on": f"{Path(data).resolve().name} ({len(items)} items, {bank.duration / 3600:.2f} h)",
            "data": str(data), "train_config": tc.__dict__, "device": str(device)}
    if init is not None:
        meta["initialised_from"] = {"checkpoint": str(init), "trained_on": init_meta.get("trained_on"),
                                    "steps": init_meta.get("steps")}
        meta["trained_on"] = f"{init_meta.get('trained_on')} -> {meta['trained_on']}"
    history = list(train_state.get("history", [])) if train_state else []
    it = range(start_step, tc.steps)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(it, initial=start_step, total=tc.steps, desc="train fcg", unit="step", dynamic_ncols=True)
        it = bar
    running = {}
    t_start = time.time()
    for step in it:
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        rows = bank.sample_rows(tc.batch, tc.consistency_rows, g)
        batch = bank.batch(rows, g, tc)
        out_d = model.loss(batch, n_consistency=tc.consistency_rows)
        opt.zero_grad(set_to_none=True)
        out_d["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        for k, v in out_d.items():
            v = float(v.detach())
            running[k] = 0.98 * running.get(k, v) + 0.02 * v
        if bar is not None and step % 10 == 0:
            bar.set_postfix(nll_exp=f"{running['nll_exp']:.3f}", nll_pose=f"{running['nll_pose']:.3f}")
        done = step + 1
        if done % 50 == 0:
            history.append({"step": done, **{k: round(v, 5) for k, v in running.items()},
                            "elapsed_s": round(time.time() - t_start, 1)})
        if done % tc.checkpoint_every == 0 or done == tc.steps:
            if done == tc.steps:
                store_latents(model, bank, tc, g)
            meta.update(steps=done, history=history[-200:], last=history[-1] if history else {})
            save_checkpoint(out, model, meta, {"step": done, "optimizer": opt.state_dict(), "history": history})
    if bar is not None:
        bar.close()
    if start_step >= tc.steps:
        log(f"{out} already trained for {start_step} steps (>= --steps {tc.steps})")
    meta["train_seconds"] = round(time.time() - t_start, 1)
    return meta


@torch.no_grad()
def store_latents(model: FCGModel, bank: FrameBank, tc: TrainConfig, g: torch.Generator) -> None:
    """Keep f^-1 of random training frames (teacher-forced context) for manifold projection."""
    was = model.training
    model.eval()
    rows = bank.sample_rows(min(tc.latents, model.cfg.n_latents), 0, g)
    b = bank.batch(rows)
    f_a = model.audio(b["windows"])
    cond = model.exp_condition(f_a, b["emotion"], b["source"], b["exp_prev"])
    z, _ = model.exp.flow(b["exp"], cond)
    model.store_latents(z, b["emotion"])
    model.train(was)


def export_default(ckpt: str | Path, out: str | Path, sampling_scale: float | None = None) -> Path:
    """Strip training state and store weights as float16: the small checkpoint that ships.
    sampling_scale: what temperature 1 means for this checkpoint (FCGConfig.sampling_scale)."""
    model, meta, _ = load_checkpoint(ckpt)
    if sampling_scale is not None:
        model.cfg = replace(model.cfg, sampling_scale=float(sampling_scale))
    meta = {k: v for k, v in meta.items() if k != "history"}
    return save_checkpoint(out, model, meta, train_state=None, half=True)
