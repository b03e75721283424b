"""Audio + GenerateSettings -> Takes: the FCG's samples shaped by the post-sampling stages (phone
guidance, intensity, blinks). `load_generator()` loads the shipped checkpoint. Imported lazily so
`flowvq --help` does not load torch."""
from __future__ import annotations

__all__ = ["Generator", "load_generator"]


def __getattr__(name):
    if name in __all__:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'flowvq.generate' has no attribute {name!r}")
