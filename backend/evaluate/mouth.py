"""Mouth opening, measured the same way on real faces (dlib landmarks) and on generated curves."""
from __future__ import annotations

import numpy as np

from ..generate.opening import mouth_opening  # noqa: F401  (the one definition; re-exported)


def lip_gap(landmarks: np.ndarray) -> np.ndarray:
    """(T, 68, 2) -> (T,) inner-lip gap (mean of the three vertical inner-lip distances 61-67, 62-66,
    63-65) divided by the outer eye-corner distance, so head size and distance to the camera cancel.
    The project's one lip-gap measure: real clips, plates (faces.py) and the tracker check use it."""
    lm = np.asarray(landmarks, dtype=np.float64)
    gap = (np.linalg.norm(lm[:, 61] - lm[:, 67], axis=-1) + np.linalg.norm(lm[:, 62] - lm[:, 66], axis=-1)
           + np.linalg.norm(lm[:, 63] - lm[:, 65], axis=-1)) / 3
    eyes = np.maximum(np.linalg.norm(lm[:, 36] - lm[:, 45], axis=-1), 1e-6)
    return gap / eyes


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
