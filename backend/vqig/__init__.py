"""VQIG, the paper's vector-quantised image generator: a VQGAN codebook stage and a generator
stage that turns geometry-warped frames into refined ones (see generator.py).

Inference only: training (PlateData, TrainSettings, train_codebook, train_generator, the
`train vqig` command) lives in flowvq.training.vqig*. Names are imported on first use."""
from __future__ import annotations

import importlib

_EXPORTS = {
    "load_codebook": ".checkpoint", "load_generator": ".checkpoint", "save_codebook": ".checkpoint",
    "save_generator": ".checkpoint", "CodebookConfig": ".config", "GeneratorConfig": ".config",
    "VQIGGenerator": ".generator", "refine": ".generator", "to_tensor": ".generator", "to_images": ".generator",
    "face_box": ".crop", "crop_face": ".crop", "paste_face": ".crop", "VQGAN": ".vqgan", "PatchDiscriminator": ".vqgan",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
