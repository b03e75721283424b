"""Build a mesh object with named shape keys from face-model arrays (the "Add FlowVQ head").

The face model is y-up with the face looking down +z; Blender is z-up with characters facing
-y, so vertices map (x, y, z) -> (x, -z, y). Bulk data goes in through foreach_set.
"""
from __future__ import annotations

import bpy
import numpy as np


def to_blender(points: np.ndarray, scale: float = 1.0) -> np.ndarray:
    p = np.asarray(points, np.float32)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1) * np.float32(scale)


def build_head(name: str, neutral: np.ndarray, deltas: np.ndarray, names, faces: np.ndarray,
               uv: np.ndarray | None = None, has_channel: np.ndarray | None = None,
               scale: float = 1.0, collection=None):
    """A new mesh object: the neutral shape as Basis plus one shape key per named channel.

    `faces` is (F, k) with -1 padding for polygons with fewer corners. Channels the model
    lacks (`has_channel` False) still get an (empty) key, so curves have somewhere to land.
    """
    neutral_b = to_blender(neutral, scale)
    deltas_b = to_blender(deltas, scale)
    faces = np.asarray(faces, np.int64)
    if faces.ndim != 2:
        raise ValueError(f"faces must be (F, k), got {list(faces.shape)}")
    sizes = (faces >= 0).sum(axis=1)
    loops = faces[faces >= 0]  # row-major: each face's corners in order
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(neutral_b))
    mesh.vertices.foreach_set("co", neutral_b.ravel())
    mesh.loops.add(len(loops))
    mesh.loops.foreach_set("vertex_index", loops.astype(np.int32))
    mesh.polygons.add(len(faces))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
    mesh.polygons.foreach_set("loop_start", starts)
    mesh.polygons.foreach_set("loop_total", sizes.astype(np.int32))
    if uv is not None and len(uv) == len(neutral_b):
        layer = mesh.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", np.asarray(uv, np.float32)[loops].ravel())
    mesh.update(calc_edges=True)
    mesh.validate(clean_customdata=False)
    obj = bpy.data.objects.new(name, mesh)
    (collection or bpy.context.scene.collection).objects.link(obj)
    obj.shape_key_add(name="Basis", from_mix=False)
    for i, channel in enumerate(names):
        kb = obj.shape_key_add(name=str(channel), from_mix=False)
        kb.slider_min, kb.slider_max = -1.0, 2.0  # room for intensity > 1 and calibration
        if has_channel is None or bool(has_channel[i]):
            kb.data.foreach_set("co", (neutral_b + deltas_b[i]).ravel())
    return obj
