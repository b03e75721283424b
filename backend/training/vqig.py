"""Training loops of both VQIG stages on prepared face crops (see vqig_data.py).

Codebook stage: L1 + feature-matching perceptual + adversarial (0.8, after `disc_start` steps)
+ code loss. Generator stage: code level (cross-entropy on the target's code indices +
||z_f - z_c||^2), then image level (L1 + encoder perceptual + adversarial), lr 2e-4 (spec)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..vqig import losses
from ..vqig.config import CodebookConfig, GeneratorConfig
from ..vqig.generator import VQIGGenerator, to_tensor
from ..vqig.vqgan import VQGAN, PatchDiscriminator
from .vqig_data import PlateData


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 1000
    batch: int = 4
    lr: float = 2e-4
    disc_start: int = 0  # adversarial loss only after this many steps (taming's disc_start)
    adversarial_weight: float = losses.ADVERSARIAL_WEIGHT
    code_steps: int = -1  # generator stage: steps at code level before image level; -1 = half
    w: float = 1.0  # fidelity weight used while training the image level
    seed: int = 0
    log_every: int = 10


def _device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train_codebook(images: np.ndarray, cfg: CodebookConfig | None = None, settings: TrainSettings = TrainSettings(),
                   device=None, init: tuple[VQGAN, PatchDiscriminator] | None = None,
                   log: Callable[[int, dict], None] | None = None):
    """Self-reconstruction training of the VQGAN on uint8 face crops (N,S,S,3).
    Returns (vqgan, discriminator, history: list of per-step loss dicts)."""
    dev = _device(device)
    if init is not None:
        model, disc = init
    else:
        model, disc = VQGAN(cfg), PatchDiscriminator(cfg)
    cfg = model.cfg
    if images.shape[1:] != (cfg.image_size, cfg.image_size, 3):
        raise ValueError(f"images must be (N,{cfg.image_size},{cfg.image_size},3), got {images.shape}")
    model.to(dev).train()
    disc.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=settings.lr, betas=(0.5, 0.9))
    rng = np.random.default_rng(settings.seed)
    history = []
    for step in range(settings.steps):
        idx = rng.integers(0, len(images), settings.batch)
        x = to_tensor(images[idx], dev)
        if rng.random() < 0.5:
            x = x.flip(-1)  # faces are near-symmetric: a free augmentation
        rec, _, code_loss = model(x)
        l1 = F.l1_loss(rec, x)
        fake_logits, fake_feats = disc(rec)
        with torch.no_grad():
            _, real_feats = disc(x)
        perc = losses.feature_matching(real_feats, fake_feats)
        adv_on = step >= settings.disc_start
        g = losses.hinge_g(fake_logits) if adv_on else rec.new_zeros(())
        loss = l1 + perc + settings.adversarial_weight * g + code_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        d = rec.new_zeros(())
        if adv_on:
            d = losses.hinge_d(disc(x)[0], disc(rec.detach())[0])
            opt_d.zero_grad(set_to_none=True)
            d.backward()
            opt_d.step()
        rec_row = {"l1": l1.item(), "perceptual": perc.item(), "code": code_loss.item(), "g": g.item(),
                   "d": d.item(), "total": loss.item()}
        history.append(rec_row)
        if log is not None and (step % settings.log_every == 0 or step == settings.steps - 1):
            log(step, rec_row)
    model.eval()
    return model, disc, history


def _coeff_windows(data: PlateData, idx: np.ndarray, window: int) -> np.ndarray:
    """(B, window, coeff_dim): frames t-window//2 .. t+window//2 of the same clip, edge-clamped."""
    offs = np.arange(window) - window // 2
    out = np.empty((len(idx), window, data.coeffs.shape[1]), np.float32)
    for b, t in enumerate(idx):
        lo, hi = data.clip_range(t)
        out[b] = data.coeffs[np.clip(t + offs, lo, hi - 1)]
    return out


def generator_batch(data: PlateData, idx: np.ndarray, window: int, dev):
    src = to_tensor(data.sources[data.clip[idx]], dev)
    warped = to_tensor(data.warped[idx], dev)
    target = to_tensor(data.frames[idx], dev)
    coeffs = torch.from_numpy(_coeff_windows(data, idx, window)).to(dev)
    return src, warped, target, coeffs


def train_generator(data: PlateData, codebook: VQGAN | None = None, cfg: GeneratorConfig | None = None,
                    settings: TrainSettings = TrainSettings(), device=None,
                    init: tuple[VQIGGenerator, PatchDiscriminator] | None = None,
                    log: Callable[[int, dict], None] | None = None):
    """Code level then image level. `init` continues from a generator (person fine-tune);
    otherwise a new generator is built around the frozen `codebook`."""
    dev = _device(device)
    if init is not None:
        gen, disc = init
    else:
        if codebook is None:
            raise ValueError("train_generator needs a trained codebook stage or an init generator")
        cfg = cfg or GeneratorConfig(codebook=codebook.cfg)
        if cfg.codebook != codebook.cfg:
            raise ValueError("generator config's codebook does not match the codebook checkpoint")
        gen, disc = VQIGGenerator(cfg, codebook), PatchDiscriminator(codebook.cfg)
    cfg = gen.cfg
    s = cfg.codebook.image_size
    if data.frames.shape[1:] != (s, s, 3):
        raise ValueError(f"training crops are {data.frames.shape[1:3]}, the model needs {s} x {s}")
    gen.to(dev).train()
    disc.to(dev).train()
    params = [p for p in gen.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=settings.lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=settings.lr, betas=(0.5, 0.9))
    code_steps = settings.steps // 2 if settings.code_steps < 0 else settings.code_steps
    rng = np.random.default_rng(settings.seed)
    history = []
    for step in range(settings.steps):
        idx = rng.integers(0, len(data), settings.batch)
        src, warped, target, coeffs = generator_batch(data, idx, cfg.motion_window, dev)
        with torch.no_grad():
            z_gt, gt_idx, _ = gen.vqgan.encode(target)
        out = gen.predict(src, warped, coeffs)
        ce = F.cross_entropy(out["logits"].reshape(-1, out["logits"].shape[-1]), gt_idx.reshape(-1))
        feat = F.mse_loss(out["z_f"], z_gt)
        row = {"ce": ce.item(), "feat": feat.item()}
        loss = ce + feat
        image_level = step >= code_steps
        if image_level:
            idx_pred = out["logits"].argmax(-1).view_as(gt_idx)
            img = gen.decode(idx_pred, out["enc_feats"], out["sigma"], settings.w)
            l1 = F.l1_loss(img, target)
            perc = losses.encoder_perceptual(gen.vqgan.encoder, target, img)
            adv_on = step >= settings.disc_start
            g = losses.hinge_g(disc(img)[0]) if adv_on else img.new_zeros(())
            loss = loss + l1 + perc + settings.adversarial_weight * g
            row.update(l1=l1.item(), perceptual=perc.item(), g=g.item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if image_level and adv_on:
            d = losses.hinge_d(disc(target)[0], disc(img.detach())[0])
            opt_d.zero_grad(set_to_none=True)
            d.backward()
            opt_d.step()
            row["d"] = d.item()
        row["total"] = loss.item()
        history.append(row)
        if log is not None and (step % settings.log_every == 0 or step == settings.steps - 1):
            log(step, row)
    gen.eval()
    return gen, disc, history
