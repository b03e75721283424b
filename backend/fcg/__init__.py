"""FCG: the paper's flow-based coefficient generator (ExpFlow + PoseFlow).

`load_generator()` loads the shipped default checkpoint (backend/assets/fcg_default.pt) or a
given one and returns an FCGGenerator: audio (16 kHz float32) + emotion -> takes of expression
(T, 64) and pose (T, 6) curves. Imported lazily so `flowvq --help` does not load torch.
"""
from __future__ import annotations

__all__ = ["DEFAULT_CHECKPOINT", "FCGGenerator", "load_generator"]


def __getattr__(name):
    if name in __all__:
        from . import generator

        return getattr(generator, name)
    raise AttributeError(f"module 'flowvq.fcg' has no attribute {name!r}")
