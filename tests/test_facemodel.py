"""The default face model, its interface, exports, and its agreement with a real rig (ICT-FaceKit)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from flowvq.errors import BadRequest
from flowvq.facemodel import Camera, FaceModel, export_face_model, load_face_model
from flowvq.facemodel.compare import shape_agreement
from flowvq_shared.channels import CHANNEL_INDEX, EXPRESSION_NAMES

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ICT = SHARED_DATA / "rig_ict_facekit" / "ict_facekit_blendshapes.npz"


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return load_face_model("default")


def test_default_model_is_built_fast_and_complete(model):
    from flowvq.facemodel.loaders import _default_arrays

    _default_arrays.cache_clear()
    t0 = time.perf_counter()
    m = load_face_model("default")
    assert time.perf_counter() - t0 < 4.0          # < 2 s alone; slack for a shared 2-core box
    assert m.names == EXPRESSION_NAMES and m.has_channel.all()
    v = m.n_vertices
    assert 3000 < v < 20000
    assert m.neutral.shape == (v, 3) and m.deltas.shape == (64, v, 3) and m.uv.shape == (v, 2)
    assert m.faces.dtype == np.int32 and m.faces.min() >= 0 and m.faces.max() < v
    assert m.identity_basis.shape[0] >= 8
    assert np.isfinite(m.deltas).all()
    # every channel deforms the mesh; all but the tongue channels are visible in the skin
    moved = np.abs(m.deltas).max(axis=(1, 2))
    assert (moved > 0.05).all(), [n for n, d in zip(EXPRESSION_NAMES, moved) if d <= 0.05]
    # proportions: outer eye corners ~9 cm apart, nose tip in front of the eyes, chin below the mouth
    lm = m.neutral[m.landmarks68]
    assert 8.0 < np.linalg.norm(lm[45] - lm[36]) < 10.0
    assert lm[30, 2] > lm[39, 2] + 2.0 and lm[8, 1] < lm[57, 1] - 2.5
    assert (lm[36:42, 0] < 0).all() and (lm[42:48, 0] > 0).all()   # dlib order: subject's right first


def test_landmarks_follow_anatomy(model):
    lm = lambda e: model.landmarks(e)                           # noqa: E731
    zero = np.zeros(64, np.float32)
    def one(name, w=1.0):
        e = zero.copy()
        e[CHANNEL_INDEX[name]] = w
        return e
    gap = lambda p: p[66, 1] - p[62, 1]                          # noqa: E731 (lower minus upper inner lip)
    assert gap(lm(zero)) > -0.2
    assert gap(lm(one("jawOpen"))) < gap(lm(zero)) - 2.0          # jaw opens the mouth by centimetres
    assert lm(one("jawOpen"))[8, 1] < lm(zero)[8, 1] - 1.8        # chin drops
    # a blink brings the upper lid down onto the lower lid
    e = lm(one("eyeBlinkLeft"))
    assert abs(e[43, 1] - e[47, 1]) < 0.15 and abs(lm(zero)[43, 1] - lm(zero)[47, 1]) > 0.5
    assert np.allclose(e[36:42], lm(zero)[36:42])                  # the other eye stays open
    s = lm(one("mouthSmileLeft")) - lm(zero)
    assert s[54, 1] > 0.5 and s[54, 0] > 0.2 and abs(s[48]).max() < 0.2
    b = lm(one("browInnerUp")) - lm(zero)
    assert b[21, 1] > 0.3 and b[22, 1] > 0.3


def test_vertices_pose_project(model):
    rng = np.random.default_rng(0)
    e = rng.uniform(0, 1, (3, 64)).astype(np.float32)
    ident = rng.normal(size=model.n_identity).astype(np.float32)
    vt = model.vertices(e, ident)
    assert vt.shape == (3, model.n_vertices, 3)
    assert np.allclose(vt[1], model.vertices(e[1], ident), atol=1e-4)
    assert np.allclose(model.landmarks(e[1], ident), vt[1][model.landmarks68], atol=1e-4)
    assert not np.allclose(model.identity_shape(ident), model.neutral)
    pose = np.array([[0.1, -0.2, 0.05, 1.0, -2.0, -60.0]] * 3)
    posed = model.pose(vt, pose)
    assert posed.shape == vt.shape
    # rigid: distances are kept
    d0 = np.linalg.norm(vt[0, 0] - vt[0, 100])
    assert np.isclose(np.linalg.norm(posed[0, 0] - posed[0, 100]), d0, rtol=1e-4)
    cam = Camera.for_image(512, 512)
    px = model.project(posed, cam)
    assert px.shape == (3, model.n_vertices, 2)
    lm = px[0][model.landmarks68]
    assert (lm > 0).all() and (lm < 512).all()
    assert lm[45, 0] > lm[36, 0]                                 # subject's left eye on the image's right
    assert lm[8, 1] > lm[27, 1]                                  # chin below the nose bridge (image y down)
    # positive yaw turns the nose towards the image's right
    p0 = model.project(model.pose(model.neutral, [0, 0, 0, 0, 0, -60]), cam)[model.landmarks68[30]]
    p1 = model.project(model.pose(model.neutral, [0, 0.3, 0, 0, 0, -60]), cam)[model.landmarks68[30]]
    assert p1[0] > p0[0] + 10


def test_npz_export_round_trip(model, tmp_path):
    path = export_face_model(model, tmp_path / "head.npz", "npz")
    with np.load(path, allow_pickle=False) as d:
        assert tuple(d["names"]) == EXPRESSION_NAMES
        assert d["deltas"].shape == (64, model.n_vertices, 3) and d["landmarks68"].shape == (68,)
        for key in ("neutral", "faces", "uv"):
            assert key in d.files
    again = load_face_model(path)
    assert np.array_equal(again.deltas, model.deltas) and np.array_equal(again.landmarks68, model.landmarks68)
    with pytest.raises(BadRequest):
        load_face_model(tmp_path / "missing.npz")
    with pytest.raises(BadRequest):
        export_face_model(model, tmp_path / "x.fbx")


def test_obj_export_layout(model, tmp_path):
    export_face_model(model, tmp_path / "head.obj", "obj")
    shapes = sorted((tmp_path / "head_shapes").glob("*.obj"))
    assert len(shapes) == 64
    text = (tmp_path / "head_shapes" / "jawOpen.obj").read_text().splitlines()
    vs = np.array([[float(t) for t in ln.split()[1:]] for ln in text if ln.startswith("v ")])
    assert vs.shape == model.neutral.shape
    assert np.allclose(vs, model.neutral + model.deltas[CHANNEL_INDEX["jawOpen"]], atol=1e-5)


@pytest.mark.blender
def test_glb_imports_into_blender_with_64_shape_keys(model, tmp_path):
    pytest.importorskip("bpy")
    glb = export_face_model(model, tmp_path / "head.glb", "glb")
    script = textwrap.dedent(f"""
        import bpy, json
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.ops.import_scene.gltf(filepath={str(glb)!r})
        ob = [o for o in bpy.data.objects if o.type == "MESH"][0]
        kb = ob.data.shape_keys.key_blocks
        basis = kb[0].data
        moved = {{}}
        for k in kb[1:]:
            moved[k.name] = max((k.data[i].co - basis[i].co).length for i in range(0, len(basis), 3))
        print("RESULT" + json.dumps({{"n_vertices": len(ob.data.vertices), "keys": [k.name for k in kb[1:]],
                                      "moved": moved}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
    assert line, out.stderr[-2000:]
    import json
    res = json.loads(line[0][6:])
    assert res["n_vertices"] == model.n_vertices
    assert tuple(res["keys"]) == EXPRESSION_NAMES
    assert res["moved"]["jawOpen"] > 0.02                        # metres: the jaw drops centimetres
    assert min(res["moved"].values()) > 0.0


@pytest.fixture(scope="module")
def ict():
    if not ICT.exists():
        pytest.skip(f"ICT-FaceKit not present at {ICT} (shared test data)")
    return load_face_model("ict")


def test_ict_loader_maps_names(ict):
    assert ict.n_vertices == 26719
    assert not ict.has_channel[CHANNEL_INDEX["tongueOut"]]
    assert ict.has_channel[CHANNEL_INDEX["browInnerUp"]] and ict.has_channel[CHANNEL_INDEX["cheekPuff"]]
    assert ict.has_channel[:52].sum() == 51
    assert ict.faces.max() < ict.n_vertices


def test_expression_shapes_agree_with_ict(model, ict):
    """Per shared ARKit name, our 68-landmark displacement points the way ICT-FaceKit's does."""
    agreement = shape_agreement(model, ict)
    arkit = {k: v for k, v in agreement.items() if EXPRESSION_NAMES.index(k) < 52}
    report = "\n".join(f"{k:22s} {v:+.3f}" for k, v in sorted(arkit.items(), key=lambda kv: kv[1]))
    print("\ncosine with ICT-FaceKit per shape:\n" + report)
    assert len(arkit) == 51
    values = np.array(list(arkit.values()))
    assert np.median(values) >= 0.8, report
    assert values.min() >= 0.3, report
