"""Self-describing VQIG checkpoints: {"format", "kind", "config", "state_dict", ...}, tensors
only, read with weights_only=True and strict loading."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ..errors import CheckpointError
from .config import CodebookConfig, GeneratorConfig
from .generator import VQIGGenerator
from .vqgan import VQGAN, PatchDiscriminator

FORMAT = 1
CODEBOOK_KIND = "vqig_codebook"
GENERATOR_KIND = "vqig_generator"


def _save(obj: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)  # a killed run never leaves a half-written checkpoint
    return path


def _read(path, kind: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's bad checkpoint
        first = (str(e).strip().splitlines() or [""])[0]  # torch's messages run to many lines
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {first}") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a FlowVQ checkpoint of format {FORMAT}")
    if ck.get("kind") != kind:
        raise CheckpointError(f"{path} holds a {ck.get('kind')!r}, expected {kind!r}")
    return ck


def save_codebook(path, vqgan: VQGAN, disc: PatchDiscriminator | None = None, step: int = 0) -> Path:
    obj = {"format": FORMAT, "kind": CODEBOOK_KIND, "config": asdict(vqgan.cfg), "state_dict": vqgan.state_dict(),
           "step": step}
    if disc is not None:
        obj["discriminator"] = disc.state_dict()
    return _save(obj, path)


def load_codebook(path, with_discriminator: bool = False):
    ck = _read(path, CODEBOOK_KIND)
    cfg = CodebookConfig(**ck["config"])
    model = VQGAN(cfg)
    model.load_state_dict(ck["state_dict"], strict=True)
    if not with_discriminator:
        return model
    disc = PatchDiscriminator(cfg)
    if "discriminator" in ck:
        disc.load_state_dict(ck["discriminator"], strict=True)
    return model, disc


def save_generator(path, gen: VQIGGenerator, disc: PatchDiscriminator | None = None, step: int = 0,
                   note: str = "") -> Path:
    obj = {"format": FORMAT, "kind": GENERATOR_KIND, "config": asdict(gen.cfg), "state_dict": gen.state_dict(),
           "step": step, "note": note}
    if disc is not None:
        obj["discriminator"] = disc.state_dict()
    return _save(obj, path)


def load_generator(path, with_discriminator: bool = False):
    ck = _read(path, GENERATOR_KIND)
    cfg = GeneratorConfig.from_dict(ck["config"])
    gen = VQIGGenerator(cfg)
    gen.load_state_dict(ck["state_dict"], strict=True)
    gen.eval()
    if not with_discriminator:
        return gen
    disc = PatchDiscriminator(cfg.codebook)
    if "discriminator" in ck:
        disc.load_state_dict(ck["discriminator"], strict=True)
    return gen, disc
