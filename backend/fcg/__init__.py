"""FCG: the paper's flow-based coefficient generator (ExpFlow + PoseFlow) and its frame sampler.

The model only: `flowvq.generate` turns its samples into takes. `DEFAULT_CHECKPOINT` is the shipped
checkpoint (backend/assets/fcg_default.pt); `load_checkpoint` loads one strictly. Imported lazily so
`flowvq --help` does not load torch.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_CHECKPOINT", "load_checkpoint"]

# defined here, not in checkpoint.py: the server checks it exists before it imports torch
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "fcg_default.pt"  # ships in the wheel


def __getattr__(name):
    if name in __all__:
        from . import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'flowvq.fcg' has no attribute {name!r}")
