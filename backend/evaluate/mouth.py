"""Mouth opening, measured the same way on real faces (dlib landmarks) and on generated curves."""
from __future__ import annotations

import numpy as np

from flowvq_shared.channels import CHANNEL_INDEX


def lip_gap(landmarks: np.ndarray) -> np.ndarray:
    """(T, 68, 2) -> (T,) inner-lip gap (mean of the three vertical inner-lip distances 61-67, 62-66,
    63-65) divided by the outer eye-corner distance, so head size and distance to the camera cancel.
    The project's one lip-gap measure: real clips, plates (faces.py) and the tracker check use it."""
    lm = np.asarray(landmarks, dtype=np.float64)
    gap = (np.linalg.norm(lm[:, 61] - lm[:, 67], axis=-1) + np.linalg.norm(lm[:, 62] - lm[:, 66], axis=-1)
           + np.linalg.norm(lm[:, 63] - lm[:, 65], axis=-1)) / 3
    eyes = np.maximum(np.linalg.norm(lm[:, 36] - lm[:, 45], axis=-1), 1e-6)
    return gap / eyes


# How much each ARKit/extra channel opens (+) or closes (-) the lips; fixed before any evaluation.
OPENING_WEIGHTS = {
    "jawOpen": 1.0, "mouthClose": -1.0,
    "mouthLowerDownLeft": 0.25, "mouthLowerDownRight": 0.25,
    "mouthUpperUpLeft": 0.25, "mouthUpperUpRight": 0.25,
    "lipsPart": 0.3, "mouthFunnel": 0.2,
    "mouthPressLeft": -0.2, "mouthPressRight": -0.2, "mouthRollLower": -0.2, "mouthRollUpper": -0.2,
}
_W = np.zeros(64)
for _name, _w in OPENING_WEIGHTS.items():
    _W[CHANNEL_INDEX[_name]] = _w


def mouth_opening(expression: np.ndarray) -> np.ndarray:
    """(T, 64) generated expression -> (T,) lip opening (arbitrary units; correlations are scale-free)."""
    return np.asarray(expression, dtype=np.float64) @ _W


def fill_nan(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over frames where no face was found."""
    x = np.asarray(x, dtype=np.float64).copy()
    bad = ~np.isfinite(x)
    if bad.all():
        return np.zeros_like(x)
    if bad.any():
        idx = np.arange(len(x))
        x[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    return x
