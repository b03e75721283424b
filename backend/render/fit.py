"""The portrait's fit: identity, expression, pose and camera, found once by the tracker."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowvq_shared.channels import N_EXPRESSION, N_POSE


@dataclass(frozen=True)
class PortraitFit:
    identity: np.ndarray  # (K,)
    expression: np.ndarray  # (64,)
    pose: np.ndarray  # (6,) the portrait's own head pose; a take's pose is added to it
    camera: object  # flowvq.facemodel.Camera
    landmarks: np.ndarray  # (68,2) detected landmarks in portrait pixels

    def __post_init__(self):
        if np.asarray(self.expression).shape != (N_EXPRESSION,) or np.asarray(self.pose).shape != (N_POSE,):
            raise ValueError("PortraitFit needs expression (64,) and pose (6,)")


def fit_portrait(rgb: np.ndarray, model) -> PortraitFit:
    """Fit `model` to the portrait with the tracker (raises NoFace / BadImage)."""
    from ..tracker import track

    r = track(rgb, model=model) if _accepts_model(track) else track(rgb)
    return PortraitFit(
        identity=np.asarray(r.identity, np.float32),
        expression=np.asarray(r.expression, np.float32).reshape(-1, N_EXPRESSION)[0],
        pose=np.asarray(r.pose, np.float32).reshape(-1, N_POSE)[0],
        camera=r.camera,
        landmarks=np.asarray(r.landmarks, np.float32).reshape(-1, 68, 2)[0],
    )


def _accepts_model(fn) -> bool:
    import inspect

    try:
        return "model" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
