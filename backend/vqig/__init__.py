"""VQIG, the paper's vector-quantised image generator: a VQGAN codebook stage and a generator
stage that turns geometry-warped frames into refined ones (see generator.py).

Names are imported on first use, so `flowvq.vqig.cli` loads without torch."""
from __future__ import annotations

import importlib

_EXPORTS = {
    "load_codebook": ".checkpoint", "load_generator": ".checkpoint", "save_codebook": ".checkpoint",
    "save_generator": ".checkpoint", "CodebookConfig": ".config", "GeneratorConfig": ".config",
    "PlateData": ".data", "VQIGGenerator": ".generator", "TrainSettings": ".train", "refine": ".train",
    "train_codebook": ".train", "train_generator": ".train", "VQGAN": ".vqgan", "PatchDiscriminator": ".vqgan",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
