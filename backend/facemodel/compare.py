"""Compare two models' expression shapes by the direction of their 68-landmark displacements."""
from __future__ import annotations

import numpy as np

from flowvq_shared.channels import EXPRESSION_NAMES

from .model import FaceModel


def _normalised_landmarks(model: FaceModel) -> tuple[np.ndarray, float]:
    lm = model.neutral[model.landmarks68].astype(np.float64)
    scale = float(np.linalg.norm(lm[45] - lm[36]))
    return (lm - lm.mean(0)) / scale, scale


def landmark_rotation(model: FaceModel, reference: FaceModel) -> np.ndarray:
    """Rotation (Kabsch) taking `model`'s scaled neutral landmarks onto `reference`'s."""
    a, _ = _normalised_landmarks(model)
    b, _ = _normalised_landmarks(reference)
    u, _s, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    return (u @ np.diag([1, 1, d]) @ vt).T


def shape_agreement(model: FaceModel, reference: FaceModel) -> dict[str, float]:
    """Cosine between the two models' 68-landmark displacements, per channel both really have."""
    rot = landmark_rotation(model, reference)
    _, sa = _normalised_landmarks(model)
    _, sb = _normalised_landmarks(reference)
    out = {}
    for c, name in enumerate(EXPRESSION_NAMES):
        if not (model.has_channel[c] and reference.has_channel[c]):
            continue
        da = (model.deltas[c][model.landmarks68].astype(np.float64) / sa) @ rot.T
        db = reference.deltas[c][reference.landmarks68].astype(np.float64) / sb
        na, nb = np.linalg.norm(da), np.linalg.norm(db)
        out[name] = float((da * db).sum() / (na * nb)) if na > 0 and nb > 0 else 0.0
    return out
