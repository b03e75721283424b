"""One interface for every morphable model: a linear identity + 64-channel expression basis.

Conventions shared by all models (see docs/face_model.md):
- model space: x towards the subject's left, y up, z out of the face; units are the model's own
  (centimetres for the default model and ICT-FaceKit).
- pose (6,) = pitch, yaw, roll (radians; rotation R = Rz(roll) @ Ry(yaw) @ Rx(pitch) about the
  model origin) then translation tx, ty, tz. Posed vertices live in camera space.
- camera space is OpenGL's (and pyrender's): the camera sits at the origin looking down -z,
  y up, so a head in front of the camera has tz < 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowvq_shared.channels import EXPRESSION_NAMES, N_EXPRESSION


@dataclass(frozen=True)
class Camera:
    """A pinhole camera in pixels; the image's x grows rightwards and y downwards."""

    focal: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def for_image(cls, width: int, height: int, fov_deg: float = 30.0) -> "Camera":
        """A camera with the given horizontal-ish field of view over the longer image side."""
        focal = 0.5 * max(width, height) / np.tan(np.radians(fov_deg) / 2)
        return cls(float(focal), width / 2.0, height / 2.0, int(width), int(height))

    def to_array(self) -> np.ndarray:
        return np.array([self.focal, self.cx, self.cy, self.width, self.height], np.float64)

    @classmethod
    def from_array(cls, a) -> "Camera":
        a = np.asarray(a, np.float64)
        return cls(float(a[0]), float(a[1]), float(a[2]), int(a[3]), int(a[4]))


def rotation_matrix(angles: np.ndarray) -> np.ndarray:
    """(…,3) pitch, yaw, roll -> (…,3,3) R = Rz(roll) @ Ry(yaw) @ Rx(pitch)."""
    angles = np.asarray(angles, np.float64)
    p, y, r = angles[..., 0], angles[..., 1], angles[..., 2]
    cp, sp, cy, sy, cr, sr = np.cos(p), np.sin(p), np.cos(y), np.sin(y), np.cos(r), np.sin(r)
    one, zero = np.ones_like(p), np.zeros_like(p)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(angles.shape[:-1] + (3, 3))
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(angles.shape[:-1] + (3, 3))
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(angles.shape[:-1] + (3, 3))
    return rz @ ry @ rx


def project_points(points: np.ndarray, camera: Camera) -> np.ndarray:
    """(…,3) camera-space points -> (…,2) pixels (perspective; camera looks down -z)."""
    points = np.asarray(points, np.float64)
    depth = np.maximum(-points[..., 2], 1e-6)
    u = camera.cx + camera.focal * points[..., 0] / depth
    v = camera.cy - camera.focal * points[..., 1] / depth
    return np.stack([u, v], -1)


class FaceModel:
    """A linear morphable face: neutral + identity basis + 64 named expression deltas."""

    def __init__(self, *, name: str, neutral, deltas, faces, uv, identity_basis, landmarks68,
                 has_channel=None, part=None):
        self.name = str(name)
        self.neutral = np.ascontiguousarray(neutral, np.float32)
        self.deltas = np.ascontiguousarray(deltas, np.float32)
        self.faces = np.ascontiguousarray(faces, np.int32)
        self.uv = np.ascontiguousarray(uv, np.float32)
        self.identity_basis = np.ascontiguousarray(identity_basis, np.float32).reshape(-1, *self.neutral.shape)
        self.landmarks68 = np.asarray(landmarks68, np.int64)
        v = self.neutral.shape[0]
        if self.deltas.shape != (N_EXPRESSION, v, 3):
            raise ValueError(f"deltas must be (64,{v},3), got {self.deltas.shape}")
        if self.landmarks68.shape != (68,) or self.landmarks68.min() < 0 or self.landmarks68.max() >= v:
            raise ValueError("landmarks68 must be 68 vertex indices")
        if self.uv.shape != (v, 2):
            raise ValueError(f"uv must be ({v},2)")
        self.has_channel = (np.ones(N_EXPRESSION, bool) if has_channel is None
                            else np.asarray(has_channel, bool).copy())
        self.part = None if part is None else np.asarray(part, np.int8)

    names: tuple[str, ...] = EXPRESSION_NAMES

    @property
    def n_vertices(self) -> int:
        return self.neutral.shape[0]

    @property
    def n_identity(self) -> int:
        return self.identity_basis.shape[0]

    def __repr__(self) -> str:
        return (f"FaceModel({self.name!r}, V={self.n_vertices}, F={len(self.faces)}, "
                f"K={self.n_identity}, channels={int(self.has_channel.sum())}/64)")

    def identity_shape(self, identity=None) -> np.ndarray:
        """Neutral face of the person `identity` (K,) (None: the mean face)."""
        if identity is None or self.n_identity == 0:
            return self.neutral
        identity = np.asarray(identity, np.float32)
        return self.neutral + np.tensordot(identity, self.identity_basis, axes=(0, 0))

    def vertices(self, expression, identity=None) -> np.ndarray:
        """Expression (64,) -> (V,3) or (T,64) -> (T,V,3) vertices in model space."""
        expression = np.asarray(expression, np.float32)
        if expression.shape[-1] != N_EXPRESSION:
            raise ValueError(f"expression must end in 64 channels, got {expression.shape}")
        base = self.identity_shape(identity)
        flat = self.deltas.reshape(N_EXPRESSION, -1)
        out = expression.reshape(-1, N_EXPRESSION) @ flat
        out = out.reshape(expression.shape[:-1] + base.shape) + base
        return out

    def landmarks(self, expression, identity=None) -> np.ndarray:
        """The 68 landmark vertices only (cheap: what a tracker fits)."""
        expression = np.asarray(expression, np.float32)
        lm = self.landmarks68
        base = self.identity_shape(identity)[lm]
        return np.tensordot(expression, self.deltas[:, lm], axes=(-1, 0)) + base

    @staticmethod
    def pose(vertices, pose) -> np.ndarray:
        """Rotate about the model origin, then translate: (…,V,3) with pose (6,) or (T,6)."""
        vertices = np.asarray(vertices, np.float64)
        pose = np.asarray(pose, np.float64)
        rot = rotation_matrix(pose[..., :3])
        out = np.einsum("...ij,...vj->...vi", rot, vertices) + pose[..., None, 3:]
        return out.astype(np.float32)

    @staticmethod
    def project(vertices, camera: Camera) -> np.ndarray:
        """Camera-space vertices (…,3) -> pixel coordinates (…,2)."""
        return project_points(vertices, camera).astype(np.float32)

    def to_arrays(self) -> dict:
        """What the npz export holds; enough to build the mesh with 64 shape keys elsewhere."""
        return {
            "names": np.array(EXPRESSION_NAMES),
            "has_channel": self.has_channel.copy(),
            "neutral": self.neutral.copy(),
            "deltas": self.deltas.copy(),
            "faces": self.faces.copy(),
            "uv": self.uv.copy(),
            "landmarks68": self.landmarks68.astype(np.int64),
            "identity_basis": self.identity_basis.copy(),
        }

    def eye_corner_distance(self, identity=None) -> float:
        """Outer-eye-corner distance (landmarks 36 and 45): the model's natural length scale."""
        lm = self.identity_shape(identity)[self.landmarks68]
        return float(np.linalg.norm(lm[45] - lm[36]))
