"""Loaders: the default head (built in code), ICT-FaceKit, our own npz exports, Basel (BFM) files."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from flowvq.errors import BadRequest, CheckpointError
from flowvq_shared.channels import CHANNEL_INDEX, EXPRESSION_NAMES, N_EXPRESSION

from .model import FaceModel

# Where the shared test data sits next to a checkout (ICT-FaceKit is read from there by default).
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ICT_DIR = SHARED_DATA / "rig_ict_facekit"


@functools.lru_cache(maxsize=1)
def _default_arrays():
    from .default_head import build_head
    from .default_shapes import author_expression_deltas, author_identity_basis

    head = build_head()
    return head, author_expression_deltas(head), author_identity_basis(head)


def default_face_model() -> FaceModel:
    """The project's own head: generated from first principles in well under a second."""
    head, deltas, ident = _default_arrays()
    return FaceModel(name="default", neutral=head.vertices, deltas=deltas, faces=head.faces, uv=head.uv,
                     identity_basis=ident, landmarks68=head.landmarks68, part=head.part)


def ict_name(channel: str) -> list[str]:
    """ICT-FaceKit shape name(s) making up one of our channels (summed); [] when ICT lacks it."""
    if channel in ("browInnerUp", "cheekPuff"):
        return [channel + "_L", channel + "_R"]
    if channel in ("jawLeft", "jawRight", "mouthLeft", "mouthRight"):   # a direction, not a side
        return [channel]
    if channel in ("cheekRaiseLeft", "cheekRaiseRight"):               # AU6, ICT's cheekRaiser
        return ["cheekRaiser_" + ("L" if channel.endswith("Left") else "R")]
    if channel.endswith("Left"):
        return [channel[:-4] + "_L"]
    if channel.endswith("Right"):
        return [channel[:-5] + "_R"]
    return [channel]


def _ict_uv(obj_path: Path, n_vertices: int) -> np.ndarray:
    """Per-vertex UVs from the ICT obj (first texture coordinate seen for each vertex)."""
    uv = np.zeros((n_vertices, 2), np.float32)
    if not obj_path.exists():
        return uv
    vts, seen = [], np.zeros(n_vertices, bool)
    with open(obj_path) as fh:
        for line in fh:
            if line.startswith("vt "):
                vts.append([float(t) for t in line.split()[1:3]])
            elif line.startswith("f "):
                for tok in line.split()[1:]:
                    parts = tok.split("/")
                    if len(parts) > 1 and parts[1]:
                        vi, ti = int(parts[0]) - 1, int(parts[1]) - 1
                        if vi < n_vertices and not seen[vi]:
                            uv[vi] = vts[ti]
                            seen[vi] = True
    return uv


def ict_face_model(folder: Path | str | None = None) -> FaceModel:
    """ICT-FaceKit (MIT) with its ARKit-style names mapped onto our 64 channels."""
    folder = Path(folder) if folder is not None else ICT_DIR
    path = folder / "ict_facekit_blendshapes.npz"
    if not path.exists():
        raise BadRequest(f"ICT-FaceKit not found at {path} (it is read from ../shared/data/rig_ict_facekit)")
    d = np.load(path, allow_pickle=False)
    names = [str(n) for n in d["names"]]
    neutral = d["neutral"].astype(np.float32)
    deltas = np.zeros((N_EXPRESSION, len(neutral), 3), np.float32)
    has = np.zeros(N_EXPRESSION, bool)
    for c in EXPRESSION_NAMES:
        parts = ict_name(c)
        if parts and all(p in names for p in parts):
            deltas[CHANNEL_INDEX[c]] = sum(d["deltas"][names.index(p)] for p in parts)
            has[CHANNEL_INDEX[c]] = True
    quads = d["faces"]
    tri = [quads[:, [0, 1, 2]]]
    is_quad = quads[:, 3] >= 0
    tri.append(quads[is_quad][:, [0, 2, 3]])
    faces = np.concatenate(tri).astype(np.int32)
    return FaceModel(name="ict", neutral=neutral, deltas=deltas, faces=faces,
                     uv=_ict_uv(folder / "generic_neutral_mesh.obj", len(neutral)),
                     identity_basis=np.zeros((0, len(neutral), 3), np.float32),
                     landmarks68=d["landmarks_multipie68"], has_channel=has)


def npz_face_model(path: Path | str) -> FaceModel:
    """A model exported by `export_face_model(..., "npz")` (names must match ours)."""
    path = Path(path)
    try:
        d = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's bad input
        raise BadRequest(f"cannot read face model {path}: {exc}") from None
    missing = {"names", "neutral", "deltas", "faces", "uv", "landmarks68"} - set(d.files)
    if missing:
        raise CheckpointError(f"{path} is not a FlowVQ face model npz (missing {', '.join(sorted(missing))})")
    if tuple(str(n) for n in d["names"]) != EXPRESSION_NAMES:
        raise CheckpointError(f"{path}: channel names differ from FlowVQ's 64 expression channels")
    ident = d["identity_basis"] if "identity_basis" in d.files else np.zeros((0,) + d["neutral"].shape, np.float32)
    has = d["has_channel"] if "has_channel" in d.files else None
    return FaceModel(name=path.stem, neutral=d["neutral"], deltas=d["deltas"], faces=d["faces"], uv=d["uv"],
                     identity_basis=ident, landmarks68=d["landmarks68"], has_channel=has)


def bfm_face_model(path: Path | str) -> FaceModel:
    """The Basel Face Model in Deep3DFaceRecon's `BFM_model_front.mat` layout (user-supplied).

    Its 64 expression components are PCA directions, not ARKit shapes: they fill the 64 slots in
    order so Deep3DFaceRecon coefficients drive it directly; `channel_kind` is then "pca".
    """
    from scipy.io import loadmat

    try:
        m = loadmat(str(path))
    except Exception as exc:  # noqa: BLE001
        raise BadRequest(f"cannot read Basel model {path}: {exc}") from None
    need = {"meanshape", "idBase", "exBase", "tri", "keypoints"}
    if not need <= set(m):
        raise BadRequest(f"{path} lacks {', '.join(sorted(need - set(m)))}: not a BFM_model_front.mat")
    mean = m["meanshape"].reshape(-1, 3).astype(np.float32)
    mean = mean - mean.mean(0)          # Deep3DFaceRecon centres the mean shape the same way
    v = len(mean)
    ex = m["exBase"].astype(np.float32).T.reshape(-1, v, 3)[:N_EXPRESSION]
    idb = m["idBase"].astype(np.float32).T.reshape(-1, v, 3)
    uv = np.zeros((v, 2), np.float32)
    model = FaceModel(name=Path(path).stem, neutral=mean, deltas=ex, faces=m["tri"].astype(np.int64) - 1, uv=uv,
                      identity_basis=idb, landmarks68=m["keypoints"].ravel().astype(np.int64) - 1)
    model.channel_kind = "pca"
    model.expression_bounds = np.tile([-10.0, 10.0], (N_EXPRESSION, 1))
    return model


def load_face_model(model="default") -> FaceModel:
    """"default", "ict", an exported .npz, or a Basel BFM_model_front.mat; a FaceModel passes through."""
    if isinstance(model, FaceModel):
        return model
    key = str(model)
    if key == "default":
        return default_face_model()
    if key == "ict":
        return ict_face_model()
    path = Path(key)
    if not path.exists():
        raise BadRequest(f"unknown face model {key!r}: use default, ict, or a path to an .npz/.mat file")
    if path.suffix.lower() == ".npz":
        return npz_face_model(path)
    if path.suffix.lower() == ".mat":
        return bfm_face_model(path)
    raise BadRequest(f"face model {path}: expected an .npz (FlowVQ export) or .mat (Basel) file")
