"""What the tracker returns, and its npz file (plain arrays, no pickle)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowvq.errors import BadRequest
from flowvq.facemodel.model import Camera


@dataclass
class TrackResult:
    expression: np.ndarray          # (T,64) float32
    pose: np.ndarray                # (T,6) float32: pitch yaw roll (rad), tx ty tz (model units)
    identity: np.ndarray            # (K,) float32, one per clip
    camera: Camera
    fps: float                      # 0 for a still image
    landmarks: np.ndarray           # (T,68,2) float32 pixels (dlib), NaN where no face
    confidence: np.ndarray          # (T,) 0..1; 0 where no face
    face_found: np.ndarray          # (T,) bool
    model: str = "default"
    notes: list[str] = field(default_factory=list)

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, expression=self.expression, pose=self.pose, identity=self.identity,
            camera=self.camera.to_array(), fps=np.float64(self.fps), landmarks=self.landmarks,
            confidence=self.confidence, face_found=self.face_found, model=np.str_(self.model),
            notes=np.array(self.notes, dtype=np.str_))
        return path

    @classmethod
    def load(cls, path) -> "TrackResult":
        try:
            d = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BadRequest(f"cannot read track file {path}: {exc}") from None
        return cls(expression=d["expression"], pose=d["pose"], identity=d["identity"],
                   camera=Camera.from_array(d["camera"]), fps=float(d["fps"]), landmarks=d["landmarks"],
                   confidence=d["confidence"], face_found=d["face_found"], model=str(d["model"]),
                   notes=[str(n) for n in d["notes"]])
