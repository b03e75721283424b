"""Plates: a portrait + a take's curves -> HD face frames (geometry warp, optional VQIG refinement).

Names are imported on first use, so `flowvq.render.cli` loads without torch or OpenCV."""
from __future__ import annotations

import importlib

_EXPORTS = {
    "PlateRenderer": ".plates", "write_plates": ".plates", "portrait_sha256": ".plates",
    "PortraitFit": ".fit", "fit_portrait": ".fit", "FaceWarper": ".warp", "WarpSettings": ".warp",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
