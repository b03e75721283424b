"""Colours of what the portrait never shows: the oral cavity, teeth and tongue of the face model.

When the lips part, the rasteriser sees these parts of the mesh; they take a colour per vertex
(cavity darkening with depth, teeth off-white, tongue red), scaled to the portrait's exposure,
instead of being warped from pixels of closed lips."""
from __future__ import annotations

import numpy as np

# part labels of the default head (facemodel.default_head): skin, cavity, teeth_upper,
# teeth_lower, tongue, eye_left, eye_right
SKIN, CAVITY, TEETH_UPPER, TEETH_LOWER, TONGUE, EYE_LEFT, EYE_RIGHT = range(7)
INTERIOR_PARTS = (CAVITY, TEETH_UPPER, TEETH_LOWER, TONGUE)

CAVITY_RGB = np.array([118.0, 46.0, 48.0])
TEETH_RGB = np.array([196.0, 186.0, 170.0])
TONGUE_RGB = np.array([176.0, 82.0, 84.0])


def interior_mask(model) -> np.ndarray:
    """(V,) bool: vertices of the mouth interior (no such vertices if the model has no parts)."""
    if model.part is None:
        return np.zeros(model.n_vertices, bool)
    return np.isin(model.part, INTERIOR_PARTS)


def interior_colours(model, neutral_vertices: np.ndarray, portrait_rgb: np.ndarray, lip_rgb=None) -> np.ndarray:
    """(V,3) float colours for interior vertices (zeros elsewhere), lit like the portrait."""
    out = np.zeros((model.n_vertices, 3), np.float32)
    if model.part is None:
        return out
    part = model.part
    v = neutral_vertices
    lips_z = float(v[model.landmarks68[48:68], 2].max())
    depth = np.clip((lips_z - v[:, 2]) / 5.0, 0.0, 1.0)  # 0 at the lips, 1 at the back of the mouth
    # exposure: the portrait's median brightness relative to a mid-grey photo
    exposure = float(np.clip(np.median(portrait_rgb) / 128.0, 0.6, 1.4))
    cav = CAVITY_RGB if lip_rgb is None else 0.5 * CAVITY_RGB + 0.5 * 0.45 * np.asarray(lip_rgb, float)
    shade = (1.0 - 0.5 * depth)[:, None]
    out[part == CAVITY] = (cav * shade[part == CAVITY])
    for p in (TEETH_UPPER, TEETH_LOWER):
        sel = part == p
        out[sel] = TEETH_RGB * (1.0 - 0.6 * depth[sel])[:, None]
    sel = part == TONGUE
    out[sel] = TONGUE_RGB * (1.0 - 0.6 * depth[sel])[:, None]
    return np.clip(out * exposure, 0, 255).astype(np.float32)
