"""Head pose channels (pitch, yaw, roll, tx, ty, tz; model space, y up) -> Blender channels.

bpy-free. The face model is y-up with the face looking down +z (glTF / OpenGL); Blender is
z-up with characters facing -y. An object therefore gets rotation (pitch, -roll, yaw) and
location (tx, -tz, ty); a bone that points up (its local y along the neck, as in any biped
rig) already has the model's axes, so it gets the channels unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PoseCurves:
    rotation_euler: np.ndarray  # (T, 3) radians, XYZ
    location: np.ndarray        # (T, 3) Blender units


def for_object(pose: np.ndarray, translation_scale: float = 1.0,
               base_rotation=(0.0, 0.0, 0.0), base_location=(0.0, 0.0, 0.0)) -> PoseCurves:
    """Pose curves for an object, added on top of the object's own rest transform."""
    pose = np.asarray(pose, np.float32)
    pitch, yaw, roll, tx, ty, tz = pose.T
    rot = np.stack([pitch, -roll, yaw], axis=1) + np.asarray(base_rotation, np.float32)
    loc = np.stack([tx, -tz, ty], axis=1) * translation_scale + np.asarray(base_location,
                                                                          np.float32)
    return PoseCurves(rot.astype(np.float32), loc.astype(np.float32))


def for_bone(pose: np.ndarray, translation_scale: float = 1.0) -> PoseCurves:
    """Pose curves in the local space of an upright head bone (relative to its rest pose)."""
    pose = np.asarray(pose, np.float32)
    return PoseCurves(np.ascontiguousarray(pose[:, :3]),
                      np.ascontiguousarray(pose[:, 3:6] * translation_scale))


def euler_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """(T, 3) XYZ Euler angles -> (T, 4) quaternions (w, x, y, z), as Blender composes them."""
    hx, hy, hz = (np.asarray(rot, np.float64) * 0.5).T
    cx, sx, cy, sy, cz, sz = np.cos(hx), np.sin(hx), np.cos(hy), np.sin(hy), np.cos(hz), np.sin(hz)
    # XYZ order applies X first: q = qz * qy * qx
    w = cz * cy * cx + sz * sy * sx
    x = cz * cy * sx - sz * sy * cx
    y = cz * sy * cx + sz * cy * sx
    z = sz * cy * cx - cz * sy * sx
    return np.stack([w, x, y, z], axis=1).astype(np.float32)
