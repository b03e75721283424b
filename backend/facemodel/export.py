"""Export a face model: npz (arrays), glb (glTF 2.0 with 64 named morph targets), obj (+ shape objs).

The glb is written directly (the format is small and documented): one mesh, one primitive,
POSITION/NORMAL/TEXCOORD_0, 64 morph targets with POSITION deltas, target names in
`mesh.extras.targetNames`, which Blender's importer turns into shape keys.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from flowvq.errors import BadRequest

from .model import FaceModel

FORMATS = ("npz", "glb", "obj")


def export_face_model(model: FaceModel, path, fmt: str | None = None) -> Path:
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise BadRequest(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "npz":
        np.savez_compressed(path, **model.to_arrays())
    elif fmt == "glb":
        path.write_bytes(glb_bytes(model))
    else:
        write_obj(model, path)
    return path


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    n = np.zeros_like(v, dtype=np.float64)
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.maximum(length, 1e-12)).astype(np.float32)


def glb_bytes(model: FaceModel, scale: float = 0.01) -> bytes:
    """The model as a binary glTF; `scale` converts model units to metres (cm -> m by default)."""
    names = [str(n) for n in model.names]
    pos = (model.neutral * scale).astype(np.float32)
    nrm = _vertex_normals(model.neutral, model.faces)
    uv = np.stack([model.uv[:, 0], 1.0 - model.uv[:, 1]], -1).astype(np.float32)  # glTF's v points down
    idx = model.faces.astype(np.uint32).ravel()
    blobs, views, accessors = [], [], []
    offset = 0

    def add(arr: np.ndarray, kind: str, target: int | None, minmax: bool = False) -> int:
        nonlocal offset
        data = np.ascontiguousarray(arr).tobytes()
        pad = (-len(data)) % 4
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        views.append(view)
        blobs.append(data + b"\0" * pad)
        offset += len(data) + pad
        acc = {"bufferView": len(views) - 1, "componentType": 5126 if arr.dtype == np.float32 else 5125,
               "count": int(arr.shape[0]), "type": kind}
        if minmax:
            acc["min"] = [float(t) for t in arr.min(0)]
            acc["max"] = [float(t) for t in arr.max(0)]
        accessors.append(acc)
        return len(accessors) - 1

    a_idx = add(idx, "SCALAR", 34963)
    a_pos = add(pos, "VEC3", 34962, minmax=True)
    a_nrm = add(nrm, "VEC3", 34962)
    a_uv = add(uv, "VEC2", 34962)
    targets = [{"POSITION": add((model.deltas[c] * scale).astype(np.float32), "VEC3", 34962, minmax=True)}
               for c in range(len(names))]
    binary = b"".join(blobs)
    doc = {
        "asset": {"version": "2.0", "generator": "FlowVQ face model export"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": f"FlowVQ_{model.name}", "mesh": 0}],
        "meshes": [{
            "name": f"FlowVQ_{model.name}",
            "primitives": [{"attributes": {"POSITION": a_pos, "NORMAL": a_nrm, "TEXCOORD_0": a_uv},
                            "indices": a_idx, "mode": 4, "targets": targets}],
            "weights": [0.0] * len(names),
            "extras": {"targetNames": names},
        }],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": views,
        "accessors": accessors,
    }
    js = json.dumps(doc, separators=(",", ":")).encode()
    js += b" " * ((-len(js)) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (struct.pack("<III", 0x46546C67, 2, total) + struct.pack("<II", len(js), 0x4E4F534A) + js
            + struct.pack("<II", len(binary), 0x004E4942) + binary)


def _obj_text(v: np.ndarray, uv: np.ndarray, f: np.ndarray, name: str) -> str:
    lines = [f"# FlowVQ face model {name}", f"o {name}"]
    lines += [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
    lines += [f"vt {a:.6f} {b:.6f}" for a, b in uv]
    lines += [f"f {a}/{a} {b}/{b} {c}/{c}" for a, b, c in (f + 1)]
    return "\n".join(lines) + "\n"


def write_obj(model: FaceModel, path: Path) -> None:
    """OUT.obj holds the neutral; OUT_shapes/<channel>.obj each hold the full-weight shape, same vertex order.

    In Blender: import the neutral, import the shapes with "Split: Keep Vert Order", then
    "Join as Shapes" (the add-on does this from the npz directly).
    """
    path.write_text(_obj_text(model.neutral, model.uv, model.faces, model.name))
    shapes = path.with_name(path.stem + "_shapes")
    shapes.mkdir(exist_ok=True)
    for c, n in enumerate(model.names):
        (shapes / f"{n}.obj").write_text(_obj_text(model.neutral + model.deltas[c], model.uv, model.faces, n))
