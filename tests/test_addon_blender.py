"""The add-on in real headless Blender (the bpy 5.0.1 module), installed from the built zip.

One module imports bpy once: the extension is built (offline, from the wheel cache), installed
into a temporary user folder with the extension API, enabled, and driven through its operators
against real `flowvq serve` processes on 127.0.0.1:
  * a server with a tiny FCG trained here for a few steps (the real architecture; it exercises
    every add-on path whatever models have landed), and
  * a server with the shipped default checkpoint, for the checks that need a trained model
    (they skip with the server's own not_implemented message until it lands).
The target is the ICT-FaceKit head from ../shared/data (a production rig nobody here made).
"""
from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import BackendProcess

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ICT = DATA / "rig_ict_facekit" / "ict_facekit_blendshapes.npz"
SPEECH = DATA / "speech" / "hdtf_RD_Radio31_000.wav"
PORTRAIT = DATA / "portraits" / "sadtalker_happy.png"
FLOWVQ = Path(sys.executable).parent / "flowvq"

# generous: fixtures (training the tiny model, a generate) count too, on a busy 2-core machine
pytestmark = [pytest.mark.blender, pytest.mark.timeout(900)]

if not ICT.is_file() or not SPEECH.is_file():
    pytest.skip(f"real test data not found under {DATA} (ICT-FaceKit rig and speech clips)",
                allow_module_level=True)
if importlib.util.find_spec("bpy") is None:
    pytest.skip("the bpy module is not installed (pip install bpy==5.0.1)", allow_module_level=True)

# Blender reads its user folders from the environment when bpy is first imported: keep the
# extension (and its wheels) out of the real home folder.
_USER = tempfile.mkdtemp(prefix="flowvq-blender-user-")
atexit.register(shutil.rmtree, _USER, True)  # at exit: bpy keeps reading it while the module's tests run
os.environ.setdefault("BLENDER_USER_RESOURCES", _USER)

FPS = 24
STRIP_START = 11
ADDON = "bl_ext.user_default.flowvq"

# Trains a tiny FCG (the real model, a few steps) on the two real speech clips: mouth follows
# loudness, so the flow has a real signal. Runs in a subprocess: torch stays out of Blender.
TINY_CHECKPOINT = r"""
import sys
from pathlib import Path
import numpy as np, soundfile as sf
from flowvq.training.dataset import DatasetWriter
from flowvq.fcg.model import FCGConfig
from flowvq.training.fcg import TrainConfig, train
from flowvq_shared.channels import CHANNEL_INDEX
out, clips = Path(sys.argv[1]), sys.argv[2:]
fps = 25.0
with DatasetWriter(out.parent / "data", fps=fps) as w:
    for i, clip in enumerate(clips):
        audio, sr = sf.read(clip, dtype="float32")
        n = int(len(audio) / sr * fps)
        hop = sr / fps
        rms = np.array([np.sqrt(np.mean(audio[int(t * hop):int((t + 1) * hop)] ** 2) + 1e-9)
                        for t in range(n)])
        exp = np.zeros((n, 64), np.float32)
        exp[:, CHANNEL_INDEX["jawOpen"]] = np.clip(rms / rms.max(), 0, 1)
        exp[:, CHANNEL_INDEX["eyeBlinkLeft"]] = (np.arange(n) % 40 < 3)
        pose = 0.05 * np.sin(np.arange(n)[:, None] / 7.0 + np.arange(6)).astype(np.float32)
        w.add(f"u{i}", audio, sr, exp, pose, "talking", speaker=f"s{i}")
cfg = FCGConfig(steps=2, tau=3, hidden=16, heads=8, ffn=16, window=2, pose_hidden=8, pose_ffn=8,
                audio_dim=8, emotion_dim=4, audio_channels=4, n_latents=64)
train(out.parent / "data", out, TrainConfig(steps=8, batch=64, consistency_rows=4, latents=64,
      warmup=2, checkpoint_every=100), cfg=cfg, progress=False, log=lambda *a: None)
"""


class Server(BackendProcess):
    def __init__(self, *args: str):
        super().__init__("--no-zeroconf", *args)


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("tinyfcg") / "fcg_tiny.pt"
    clips = [str(p) for p in sorted((DATA / "speech").glob("*.wav"))]
    subprocess.run([sys.executable, "-c", TINY_CHECKPOINT, str(ckpt), *clips], check=True,
                   timeout=240)
    server = Server("--checkpoint", str(ckpt))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def default_server():
    # FLOWVQ_TEST_FCG_CHECKPOINT tries a candidate checkpoint before it is shipped as the default
    candidate = os.environ.get("FLOWVQ_TEST_FCG_CHECKPOINT")
    server = Server(*(["--checkpoint", candidate] if candidate else []))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def zip_path(tmp_path_factory):
    sys.path.insert(0, str(ROOT))
    import build_addon

    # offline: a test never downloads; wheels come from the build cache when it exists
    return build_addon.build(tmp_path_factory.mktemp("dist"), offline=True)


@pytest.fixture(scope="module")
def bpy(zip_path):
    import bpy as _bpy

    _bpy.ops.wm.read_factory_settings(use_empty=True)
    repo = next(r for r in _bpy.context.preferences.extensions.repos
                if r.module == "user_default")
    if not repo.directory.startswith(tempfile.gettempdir()):  # bpy was imported before us
        repo.use_custom_directory = True
        repo.custom_directory = tempfile.mkdtemp(prefix="flowvq-ext-")
    result = _bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo="user_default", enable_on_install=True)
    assert result == {"FINISHED"}
    yield _bpy
    import addon_utils

    addon_utils.disable(ADDON)


def point_at(bpy, port: int) -> None:
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.connection, prefs.host, prefs.port = "MANUAL", "127.0.0.1", port
    # connecting is quick or refused; the greeting and the job get the add-on's generous
    # defaults, so a busy machine (a backend still importing torch) does not fail the tests
    prefs.connect_timeout = 5.0


def build_ict(bpy, name: str = "ICT"):
    """The ICT-FaceKit head as an artist would import it: a mesh with 57 named shape keys."""
    d = np.load(ICT)
    neutral = d["neutral"] * 0.01  # cm -> m
    deltas = d["deltas"] * 0.01
    # y-up model -> Blender z-up
    conv = lambda p: np.stack([p[..., 0], -p[..., 2], p[..., 1]], -1)  # noqa: E731
    faces = [[int(i) for i in f if i >= 0] for f in d["faces"]]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(conv(neutral).tolist(), [], faces)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis", from_mix=False)
    for n, delta in zip(d["names"], deltas):
        kb = obj.shape_key_add(name=str(n), from_mix=False)
        kb.data.foreach_set("co", conv(neutral + delta).astype(np.float32).ravel())
    return obj


def curves_of(bpy, action) -> dict:
    from bpy_extras import anim_utils

    out = {}
    for slot in action.slots:
        bag = anim_utils.action_get_channelbag_for_slot(action, slot)
        for fc in bag.fcurves if bag else ():
            co = np.empty(2 * len(fc.keyframe_points), np.float32)
            fc.keyframe_points.foreach_get("co", co)
            out[(fc.data_path, fc.array_index)] = co.reshape(-1, 2)
    return out


@pytest.fixture(scope="module")
def rig(bpy):
    """ICT head + an Action the artist made + the speech as a sound strip at frame 11."""
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = FPS, 1.0
    scene.frame_start, scene.frame_end = 1, 100
    obj = build_ict(bpy)
    kb = obj.data.shape_keys.key_blocks
    for frame, value in ((1, 0.0), (30, 0.8), (60, 0.1)):
        kb["jawOpen"].value = value
        kb["jawOpen"].keyframe_insert("value", frame=frame)
    artist = obj.data.shape_keys.animation_data.action
    artist.name = "Artist jaw"
    se = scene.sequence_editor_create()
    strip = se.strips.new_sound("speech", str(SPEECH), 1, STRIP_START)
    se.active_strip = strip
    s = scene.flowvq
    s.target, s.audio_source, s.takes, s.seed, s.emotion = obj, "STRIP", 3, 7, "happy"
    return {"obj": obj.name, "artist": artist.name, "artist_curves": curves_of(bpy, artist)}


def report_error(bpy, call):
    """Run an operator that should fail; Blender turns its ERROR report into RuntimeError."""
    with pytest.raises(RuntimeError) as e:
        call()
    return str(e.value)


# ---------------------------------------------------------------------------- tests

def test_zip_passes_blenders_extension_validation(bpy, zip_path):
    """The same checks Blender's `extension validate` command runs (manifest limits, files)."""
    cli = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / \
        "blender_ext.py"
    result = subprocess.run([sys.executable, str(cli), "validate", str(zip_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


def test_installed_from_the_zip(bpy, zip_path):
    import zipfile

    assert ADDON in bpy.context.preferences.addons
    assert hasattr(bpy.types.Scene, "flowvq") and hasattr(bpy.ops.flowvq, "generate")
    names = zipfile.ZipFile(zip_path).namelist()
    assert "blender_manifest.toml" in names and "flowvq_shared/protocol.py" in names
    assert not any("torch" in n for n in names)
    # the add-on runs the vendored protocol, not the source tree's
    mod = sys.modules[ADDON + "._shared"]
    assert mod.protocol.__name__ == ADDON + ".flowvq_shared.protocol"


def test_no_backend_says_so_and_generate_fails_fast(bpy, rig):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_at(bpy, port)
    bpy.ops.flowvq.check_backend(blocking=True)
    st = bpy.context.window_manager.flowvq_status
    assert not st.connected and st.text.startswith("Not connected") and str(port) in st.text
    t0 = time.monotonic()
    msg = report_error(bpy, lambda: bpy.ops.flowvq.generate(blocking=True))
    assert time.monotonic() - t0 < 20  # refused at once; the bound only catches a hang
    assert "no FlowVQ backend" in msg and "connection refused" in msg
    assert len(bpy.data.objects[rig["obj"]].flowvq.takes) == 0


def test_a_backend_that_has_not_greeted_yet_is_starting(bpy):
    """Accepted but silent (a backend still importing torch): "starting", not "not connected"."""
    import socket

    prefs = bpy.context.preferences.addons[ADDON].preferences
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        point_at(bpy, listener.getsockname()[1])
        saved, prefs.greeting_timeout = prefs.greeting_timeout, 1.0
        try:
            bpy.ops.flowvq.check_backend(blocking=True)
        finally:
            prefs.greeting_timeout = saved
    st = bpy.context.window_manager.flowvq_status
    assert not st.connected and st.text.startswith("Backend starting"), st.text
    assert prefs.greeting_timeout >= 30 and prefs.connect_timeout < prefs.greeting_timeout


def test_panel_settings_come_from_the_contract(bpy):
    from flowvq_shared.settings import FIELDS, MAX_TAKES

    props = bpy.types.Scene.bl_rna.properties["flowvq"].fixed_type.properties
    for name in ("emotion", "intensity", "takes", "seed", "temperature", "blinks",
                 "phone_guidance"):
        md, p = FIELDS[name].metadata, props[name]
        assert p.name == md["label"] and p.description.lower() == md["help"].lower()
        if p.type == "ENUM":
            assert [i.identifier for i in p.enum_items] == list(md["choices"])
            assert p.default == FIELDS[name].default
        elif p.type in ("INT", "FLOAT"):
            assert p.default == pytest.approx(FIELDS[name].default)
            assert p.hard_min == pytest.approx(md["lo"])
            assert p.hard_max == pytest.approx(min(md["hi"], 2**31 - 1))
        else:
            assert p.default == FIELDS[name].default
    assert props["takes"].hard_max == MAX_TAKES and props["takes"].soft_max == 16


@pytest.fixture(scope="module")
def generated(bpy, rig, tiny_server):
    point_at(bpy, tiny_server.port)
    s = bpy.context.scene.flowvq
    s.target, s.takes, s.seed, s.emotion = bpy.data.objects[rig["obj"]], 3, 7, "happy"
    s.blinks, s.phone_guidance = False, 0.4
    bpy.context.scene.sequence_editor.active_strip = \
        bpy.context.scene.sequence_editor.strips["speech"]
    before = set(bpy.data.actions.keys())
    results = sys.modules[ADDON + ".results"]
    parse, sent = results.takes_from_result, []

    def spy(result):  # what the server sent, exactly as it arrived
        sent.append(result)
        return parse(result)

    results.takes_from_result = spy
    try:
        assert bpy.ops.flowvq.generate(blocking=True, timeout=240) == {"FINISHED"}
    finally:
        results.takes_from_result = parse
        s.blinks, s.phone_guidance = True, 0.7
    return {"new": sorted(set(bpy.data.actions.keys()) - before), "sent": sent[0], **rig}


def test_the_blend_keeps_all_of_each_takes_provenance(bpy, generated):
    import json

    obj = bpy.data.objects[generated["obj"]]
    sent = generated["sent"]
    assert sent["settings"]["blinks"] is False and sent["settings"]["phone_guidance"] == 0.4
    for item, wire in zip(obj.flowvq.takes, sent["takes"]):
        expected = {k: v for k, v in wire.items() if k not in ("expression", "pose", "names")}
        stored = json.loads(item.provenance)
        assert stored == expected
        for key in ("guidance_applied", "guidance_note", "blink_starts", "source", "index",
                    "audio_sha256"):
            assert key in stored
        assert stored["settings"]["blinks"] is False
        assert stored["settings"]["phone_guidance"] == pytest.approx(0.4)
        assert stored["settings"]["seed"] == 7 and stored["settings"]["fps"] == FPS
        assert stored["source"] == item.source == "flowvq"
        assert json.loads(item.shape_action["flowvq_provenance"]) == expected
        assert json.loads(item.pose_action["flowvq_provenance"]) == expected
        assert stored["audio_sha256"] == item.audio_sha256 == sent["audio_sha256"]


def test_generate_makes_three_takes_on_the_ict_rig(bpy, generated):
    obj = bpy.data.objects[generated["obj"]]
    scene = bpy.context.scene
    takes = obj.flowvq.takes
    assert [t.name for t in takes] == [f"FlowVQ happy s7 t{k}" for k in (1, 2, 3)]
    assert sorted(generated["new"]) == sorted([t.name for t in takes]
                                              + [t.name + " pose" for t in takes])
    frames = int(np.ceil(8.0 * FPS))  # the clip is 8 s
    keyed = {kb.name for kb in obj.data.shape_keys.key_blocks[1:]} - {"PupilDilate_L",
                                                                      "PupilDilate_R"}
    for take in takes:
        curves = curves_of(bpy, take.shape_action)
        paths = {p for p, _ in curves}
        assert paths == {f'key_blocks["{k}"].value' for k in keyed}  # 55 of ICT's 57 keys
        for co in curves.values():
            assert co[0, 0] == STRIP_START and co[-1, 0] == STRIP_START + frames - 1
            assert len(co) == frames and np.isfinite(co[:, 1]).all()
        moving = [np.ptp(co[:, 1]) for co in curves.values()]
        assert max(moving) > 1e-3
        pose = curves_of(bpy, take.pose_action)
        assert {p for p, _ in pose} == {"location", "rotation_euler"}
        assert take.fps == FPS and take.frame_start == STRIP_START
    assert scene.frame_end == STRIP_START + frames - 1  # extended from 100
    # the artist's Action: still there, same name, same keys
    artist = bpy.data.actions[generated["artist"]]
    after = curves_of(bpy, artist)
    assert after.keys() == generated["artist_curves"].keys()
    for k, co in generated["artist_curves"].items():
        np.testing.assert_array_equal(after[k], co)
    report = bpy.context.window_manager.flowvq_status.last_report
    assert "unmatched channels: tongueOut" in report
    assert "browInnerUp -> browInnerUp_L/browInnerUp_R" in report
    assert "cheekPuff -> cheekPuff_L/cheekPuff_R" in report
    assert obj.flowvq.last_mapping in report


def test_switching_takes_changes_the_evaluated_face(bpy, generated):
    obj = bpy.data.objects[generated["obj"]]
    scene = bpy.context.scene
    a = curves_of(bpy, obj.flowvq.takes[0].shape_action)
    b = curves_of(bpy, obj.flowvq.takes[1].shape_action)
    # the key and frame where the two takes differ most
    path, row = max(((p, int(np.argmax(np.abs(a[p][:, 1] - b[p][:, 1])))) for p in a),
                    key=lambda pr: abs(a[pr[0]][pr[1], 1] - b[pr[0]][pr[1], 1]))
    assert abs(a[path][row, 1] - b[path][row, 1]) > 1e-3
    key = path[0].split('"')[1]
    frame = int(a[path][row, 0])
    values = []
    for index in (0, 1):
        assert bpy.ops.flowvq.take_activate(index=index) == {"FINISHED"}
        scene.frame_set(frame)
        values.append(obj.data.shape_keys.key_blocks[key].value)
    assert values[0] == pytest.approx(float(a[path][row, 1]), abs=1e-5)
    assert values[1] == pytest.approx(float(b[path][row, 1]), abs=1e-5)
    # the list's selection auditions too
    obj.flowvq.active_take = 0
    assert obj.data.shape_keys.animation_data.action == obj.flowvq.takes[0].shape_action


def test_nla_bake_delete_and_reload(bpy, generated, tmp_path):
    obj = bpy.data.objects[generated["obj"]]
    takes = obj.flowvq.takes
    takes[0].kept = takes[2].kept = True
    assert bpy.ops.flowvq.take_push_nla() == {"FINISHED"}
    tracks = obj.data.shape_keys.animation_data.nla_tracks
    assert [t.name for t in tracks] == [takes[0].name, takes[2].name]
    assert all(abs(t.strips[0].influence - 0.5) < 1e-6 for t in tracks)
    # the NLA now plays the weighted mean of the two kept takes
    a, c = curves_of(bpy, takes[0].shape_action), curves_of(bpy, takes[2].shape_action)
    path, _ = max(a, key=lambda p: np.ptp(a[p][:, 1] + c[p][:, 1]))
    row = int(np.argmax(np.abs(a[(path, 0)][:, 1] + c[(path, 0)][:, 1])))
    bpy.context.scene.frame_set(int(a[(path, 0)][row, 0]))
    key = path.split('"')[1]
    assert obj.data.shape_keys.key_blocks[key].value == pytest.approx(
        float(a[(path, 0)][row, 1] + c[(path, 0)][row, 1]) / 2, abs=1e-4)
    n_actions = len(bpy.data.actions)
    assert bpy.ops.flowvq.take_bake() == {"FINISHED"}
    assert len(bpy.data.actions) == n_actions + 2  # one shape-key Action + one pose Action
    baked = takes[len(takes) - 1]
    assert baked.baked and obj.data.shape_keys.animation_data.action == baked.shape_action
    bk = curves_of(bpy, baked.shape_action)
    path = next(iter(a))
    np.testing.assert_allclose(bk[path][:, 1], (a[path][:, 1] + c[path][:, 1]) / 2, atol=1e-5)
    # deleting a take removes only its own Actions
    name1 = takes[1].name
    assert bpy.ops.flowvq.take_delete(index=1) == {"FINISHED"}
    assert name1 not in bpy.data.actions and generated["artist"] in bpy.data.actions
    names = [t.name for t in takes]
    blend = tmp_path / "takes.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    obj = bpy.data.objects[generated["obj"]]
    assert [t.name for t in obj.flowvq.takes] == names
    for t in obj.flowvq.takes:
        assert t.shape_action is not None and t.shape_action.name == t.name
        assert len(curves_of(bpy, t.shape_action)) == 55
    # the artist's Action survived everything, and can be given back
    artist = curves_of(bpy, bpy.data.actions[generated["artist"]])
    for k, co in generated["artist_curves"].items():
        np.testing.assert_array_equal(artist[k], co)
    assert bpy.ops.flowvq.take_restore() == {"FINISHED"}
    assert obj.data.shape_keys.animation_data.action.name == generated["artist"]


def test_a_60_second_take_applies_in_under_a_second(bpy, generated):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_apply_take import apply_60s_take

    seconds = min(apply_60s_take(bpy) for _ in range(2))
    assert seconds < 1.0, f"applying a 60 s take took {seconds:.3f} s"


def test_calibration_preset_round_trip(bpy, tmp_path):
    s = bpy.context.scene.flowvq
    bpy.ops.flowvq.calibration_reset()
    assert len(s.calibration) == 64
    s.calibration["jawOpen"].gain = 1.5
    s.calibration["eyeBlinkLeft"].offset = 0.1
    path = tmp_path / "cal.json"
    assert bpy.ops.flowvq.calibration_save(filepath=str(path)) == {"FINISHED"}
    bpy.ops.flowvq.calibration_reset()
    assert s.calibration["jawOpen"].gain == 1.0
    assert bpy.ops.flowvq.calibration_load(filepath=str(path)) == {"FINISHED"}
    assert s.calibration["jawOpen"].gain == pytest.approx(1.5)
    assert s.calibration["eyeBlinkLeft"].offset == pytest.approx(0.1)
    path.write_text("{not json")
    assert "not valid JSON" in report_error(
        bpy, lambda: bpy.ops.flowvq.calibration_load(filepath=str(path)))


def test_add_flowvq_head(bpy, default_server):
    point_at(bpy, default_server.port)
    bpy.ops.flowvq.check_backend(blocking=True)
    st = bpy.context.window_manager.flowvq_status
    assert st.connected and st.device
    if "face_model" in st.unavailable:
        pytest.skip(f"backend: {st.unavailable}")
    assert bpy.ops.flowvq.add_head(blocking=True, timeout=240) == {"FINISHED"}
    head = bpy.context.scene.flowvq.target
    from flowvq_shared.channels import EXPRESSION_NAMES

    assert head.name.startswith("FlowVQ Head")
    assert [k.name for k in head.data.shape_keys.key_blocks[1:]] == list(EXPRESSION_NAMES)


def _require(bpy, server, request: str) -> None:
    point_at(bpy, server.port)
    bpy.ops.flowvq.check_backend(blocking=True)
    st = bpy.context.window_manager.flowvq_status
    assert st.connected
    for part in st.unavailable.split("; "):
        if part.startswith(request + ":"):
            pytest.skip(f"backend says {part}")


def test_default_model_moves_with_the_speech(bpy, rig, default_server):
    """The shipped model on real speech: the jaw follows the loudness of the voice."""
    import soundfile as sf

    _require(bpy, default_server, "generate")
    scene = bpy.context.scene
    obj = build_ict(bpy, "ICT default")
    scene.flowvq.target = obj
    scene.sequence_editor.active_strip = scene.sequence_editor.strips["speech"]
    assert bpy.ops.flowvq.generate(blocking=True, timeout=240) == {"FINISHED"}
    assert len(obj.flowvq.takes) == 3
    audio, sr = sf.read(SPEECH, dtype="float32")
    hop = sr / FPS
    n = int(np.ceil(len(audio) / hop))
    rms = np.array([np.sqrt(np.mean(audio[int(t * hop):int((t + 1) * hop)] ** 2) + 1e-12)
                    for t in range(n)])
    for take in obj.flowvq.takes:
        jaw = curves_of(bpy, take.shape_action)[('key_blocks["jawOpen"].value', 0)][:, 1]
        assert np.ptp(jaw) > 0.05
        m = min(len(jaw), n)
        # articulators move before the sound they shape: let the jaw lead by up to 4 frames
        r = max(np.corrcoef(jaw[:m - lead], rms[lead:m])[0, 1] for lead in range(5))
        print(f"{take.name}: jawOpen vs loudness, best r over leads 0-4 frames = {r:.2f}")
        assert r > 0.25, f"jawOpen vs loudness correlation {r:.2f} in {take.name}"


def test_plates_from_the_active_take(bpy, generated, default_server, tmp_path):
    _require(bpy, default_server, "render")
    scene = bpy.context.scene
    obj = bpy.data.objects[generated["obj"]]
    scene.flowvq.target = obj
    scene.flowvq.portrait = str(PORTRAIT)
    scene.flowvq.plate_dir = str(tmp_path)
    assert bpy.ops.flowvq.render_plates(blocking=True, timeout=240, max_side=128) == {"FINISHED"}
    take = obj.flowvq.takes[obj.flowvq.active_take]
    files = sorted((tmp_path / take.name.replace(" ", "_")).glob("plate_*.png"))
    assert len(files) == take.frames
    strip = next(s for s in scene.sequence_editor.strips if s.type == "IMAGE")
    assert strip.frame_start == take.frame_start and len(strip.elements) == take.frames


def test_cancel_gives_control_back_promptly(bpy, tiny_server, tmp_path):
    """Cancel (Esc / the Cancel button) against the real backend: the job ends as cancelled
    within the grace period and its takes never land, whether the backend confirms the cancel,
    finishes first, or keeps working."""
    import soundfile as sf

    client = sys.modules[ADDON + ".client"]
    audio, sr = sf.read(SPEECH, dtype="float32")
    long_wav = tmp_path / "long.wav"
    sf.write(long_wav, np.concatenate([audio] * 8), sr)  # 64 s of speech
    job = client.Job(client.Endpoint("127.0.0.1", tiny_server.port),
                     {"type": "generate", "audio": long_wav.read_bytes(), "takes": 3,
                      "fps": 25.0}, cancel_grace=2.0)
    cancelled_at = []

    def on_event(event):
        if isinstance(event, client.Progress) and not cancelled_at:
            job.cancel()
            cancelled_at.append(time.monotonic())

    event = client.run_blocking(job, on_event, timeout=120)
    assert cancelled_at, "the backend never reported progress"
    waited = time.monotonic() - cancelled_at[0]
    print(f"cancel -> {event} after {waited:.2f} s")
    assert isinstance(event, client.Failed) and event.code == "cancelled", event
    assert waited < job.cancel_grace + 1.0


def test_start_local_backend_button(bpy, tmp_path):
    import json

    from test_server_actors import make_profile

    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.backend_python = sys.executable
    prefs.connection, prefs.port = "MANUAL", 0
    conn = sys.modules[ADDON + ".connection"]
    # the actors folder: by default the add-on's own folder in Blender's user data, made on demand
    prefs.actors_dir = ""
    default = Path(conn.actors_folder())
    assert default.is_dir() and default.name == "actors"
    assert str(default).startswith((_USER, tempfile.gettempdir())), default  # not the real home
    make_profile(tmp_path / "actors" / "eve", "eve")
    prefs.actors_dir = str(tmp_path / "actors")
    try:
        assert bpy.ops.flowvq.start_backend(blocking=True) == {"FINISHED"}
        st = bpy.context.window_manager.flowvq_status
        assert st.connected and st.server.startswith("flowvq"), st.text
        proc = conn.LOCAL.process
        assert proc.poll() is None
        assert proc.args[-2:] == ["--actors", str(tmp_path / "actors")]
        assert [a["id"] for a in json.loads(st.actors)] == ["eve"]  # offered in the selector
        # requests now go to the backend the button started (its port was picked by the OS)
        assert conn.endpoint().port == int(st.endpoint.rsplit(":", 1)[1]) != 0
        if "face_model" not in st.unavailable:
            assert bpy.ops.flowvq.add_head(blocking=True, timeout=240) == {"FINISHED"}
    finally:
        bpy.ops.flowvq.stop_backend()
    assert proc.poll() is not None
    assert not bpy.context.window_manager.flowvq_status.connected


def test_ui_path_results_arrive_through_the_timer(bpy, default_server):
    """What the UI does: the job runs on its worker thread and only the timer callback touches
    bpy (headless Blender has no event loop, so the test calls the timer function itself)."""
    _require(bpy, default_server, "face_model")
    tasks = sys.modules[ADDON + ".tasks"]
    ops_generate = sys.modules[ADDON + ".ops_generate"]
    client = sys.modules[ADDON + ".client"]
    spec = ops_generate.FaceModelSpec(bpy.context.scene.name, "Timer head", 0.01)
    task = tasks.submit(client.Job(client.Endpoint("127.0.0.1", default_server.port),
                                   {"type": "face_model", "model": "default"}), spec)
    assert "Timer head" not in bpy.data.objects  # nothing happens before the timer runs
    deadline = time.monotonic() + 240
    while tasks.drain() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert task.done and task.error is None, task.error
    assert "Timer head" in bpy.data.objects and not tasks.TASKS and not tasks.BOARD.jobs
    assert not bpy.context.window_manager.flowvq_status.busy


def test_head_pose_on_a_quaternion_bone(bpy, rig, tiny_server):
    scene = bpy.context.scene
    arm = bpy.data.objects.new("Rig", bpy.data.armatures.new("Rig"))
    scene.collection.objects.link(arm)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    bone = arm.data.edit_bones.new("head")
    bone.head, bone.tail = (0, 0, 1.5), (0, 0, 1.7)
    bpy.ops.object.mode_set(mode="OBJECT")
    arm.pose.bones["head"].rotation_mode = "QUATERNION"
    face = build_ict(bpy, "ICT on rig")
    s = scene.flowvq
    s.target, s.pose_mode, s.pose_object, s.pose_bone, s.takes = face, "BONE", arm, "head", 1
    point_at(bpy, tiny_server.port)
    scene.sequence_editor.active_strip = scene.sequence_editor.strips["speech"]
    try:
        assert bpy.ops.flowvq.generate(blocking=True, timeout=240) == {"FINISHED"}
    finally:
        s.pose_mode, s.takes = "OBJECT", 3
    take = face.flowvq.takes[0]
    assert take.pose_object == arm
    paths = {(p, i) for p, i in curves_of(bpy, take.pose_action)}
    assert paths == {('pose.bones["head"].rotation_quaternion', i) for i in range(4)} | \
        {('pose.bones["head"].location', i) for i in range(3)}
    assert arm.animation_data.action == take.pose_action
    # the add-on's Euler -> quaternion agrees with Blender's own
    from mathutils import Euler

    posemap = sys.modules[ADDON + ".posemap"]
    angles = np.array([[0.3, -0.2, 0.5], [-1.0, 0.7, 2.0]])
    mine = posemap.euler_to_quaternion(angles)
    for a, q in zip(angles, mine):
        np.testing.assert_allclose(q, tuple(Euler(a, "XYZ").to_quaternion()), atol=1e-6)
    # a bone that does not exist is refused before any generating
    s.pose_mode, s.pose_bone = "BONE", "nope"
    try:
        msg = report_error(bpy, lambda: bpy.ops.flowvq.generate(blocking=True))
    finally:
        s.pose_mode = "OBJECT"
    assert "no pose bone named 'nope'" in msg


def test_emotion_from_a_reference_image(bpy, rig, tiny_server):
    _require(bpy, tiny_server, "track")
    scene = bpy.context.scene
    s = scene.flowvq
    obj = build_ict(bpy, "ICT reference")
    s.target, s.emotion_source, s.reference_image, s.takes = obj, "IMAGE", str(PORTRAIT), 1
    scene.sequence_editor.active_strip = scene.sequence_editor.strips["speech"]
    try:
        assert bpy.ops.flowvq.generate(blocking=True, timeout=240) == {"FINISHED"}
    finally:
        s.emotion_source, s.takes = "LABEL", 3
    assert [t.name for t in obj.flowvq.takes] == ["FlowVQ reference s7 t1"]
    s.emotion_source, s.reference_image = "IMAGE", str(PORTRAIT) + ".missing"
    try:
        msg = report_error(bpy, lambda: bpy.ops.flowvq.generate(blocking=True))
    finally:
        s.emotion_source = "LABEL"
    assert "does not exist" in msg


@pytest.fixture
def keyed_scene(bpy, rig):
    """Emotion keys on the timeline of the rig's scene; cleared (keys, markers, mode) afterwards."""
    scene = bpy.context.scene
    s = scene.flowvq
    scene.sequence_editor.active_strip = scene.sequence_editor.strips["speech"]
    saved = (s.takes, s.seed, s.emotion, s.intensity, s.blinks, s.phone_guidance,
             scene.frame_current)
    yield scene
    s.emotion_keys.clear()
    s.emotion_markers = True  # rewrites the markers from no keys: none left
    s.emotion_source = "LABEL"
    s.takes, s.seed, s.emotion, s.intensity, s.blinks, s.phone_guidance, \
        scene.frame_current = saved
    assert not [m for m in scene.timeline_markers if m.name.startswith("FlowVQ ")]


def key_at(bpy, scene, frame: int, emotion: str, intensity: float = 1.0) -> None:
    """What the animator does: go to the frame, pick the emotion, Add Emotion Key."""
    scene.frame_current = frame
    scene.flowvq.emotion, scene.flowvq.intensity = emotion, intensity
    assert bpy.ops.flowvq.emotion_key_add() == {"FINISHED"}


def spy_generate(bpy) -> dict:
    """Generate (blocking) and return what the server sent, exactly as it arrived."""
    results = sys.modules[ADDON + ".results"]
    parse, sent = results.takes_from_result, []

    def spy(result):
        sent.append(result)
        return parse(result)

    results.takes_from_result = spy
    try:
        assert bpy.ops.flowvq.generate(blocking=True, timeout=600) == {"FINISHED"}
    finally:
        results.takes_from_result = parse
    return sent[0]


def test_emotion_keys_on_the_timeline(bpy, keyed_scene, tiny_server):
    """Keys -> markers, seconds from the strip's start at the scene rate, clamped before it, one
    take whose provenance holds the keys; the list's edits move the markers."""
    import json

    point_at(bpy, tiny_server.port)
    scene, s = keyed_scene, keyed_scene.flowvq
    obj = build_ict(bpy, "ICT keys")
    s.target, s.takes, s.emotion_source = obj, 1, "LABEL"
    key_at(bpy, scene, 5, "angry")  # before the strip (frame 11): dropped
    assert s.emotion_source == "KEYS"  # keying switches Emotion From to Keys
    key_at(bpy, scene, 8, "sad", 0.5)  # before the strip: holds from its start
    key_at(bpy, scene, STRIP_START + 3 * FPS, "happy")
    markers = sorted((m.frame, m.name) for m in scene.timeline_markers)
    assert markers == [(5, "FlowVQ angry"), (8, "FlowVQ sad 0.5"),
                       (STRIP_START + 3 * FPS, "FlowVQ happy")]
    s.emotion_keys[2].frame = STRIP_START + 2 * FPS  # edited in the list: the marker follows
    assert (STRIP_START + 2 * FPS, "FlowVQ happy") in [(m.frame, m.name)
                                                       for m in scene.timeline_markers]
    sent = spy_generate(bpy)
    keys = [["sad", 0.0, 0.5], ["happy", 2.0, 1.0]]
    assert sent["settings"]["emotion_keys"] == keys
    (item,) = obj.flowvq.takes
    assert item.name == "FlowVQ sad-happy s7 t1"
    assert json.loads(item.provenance)["settings"]["emotion_keys"] == keys
    assert json.loads(item.shape_action["flowvq_provenance"])["settings"]["emotion_keys"] == keys
    report = bpy.context.window_manager.flowvq_status.last_report
    assert "frame 8 is before the audio's start (frame 11)" in report and "1 earlier" in report
    # remove the active key: its marker goes too; two keys on one frame are refused
    s.emotion_key_index = 0
    assert bpy.ops.flowvq.emotion_key_remove() == {"FINISHED"}
    assert "FlowVQ angry" not in [m.name for m in scene.timeline_markers]
    s.emotion_keys.add()
    s.emotion_keys[-1].frame, s.emotion_keys[-1].emotion = STRIP_START + 2 * FPS, "fear"
    assert "two emotion keys at frame 59" in report_error(
        bpy, lambda: bpy.ops.flowvq.generate(blocking=True))
    s.emotion_keys.clear()
    assert "no emotion keys" in report_error(bpy, lambda: bpy.ops.flowvq.generate(blocking=True))
    assert len(obj.flowvq.takes) == 1


# brows, cheeks, smile, frown, squint, sneer: what an emotion shows beside the speaking mouth
EMOTION_KEYS_OF_THE_FACE = ("brow", "cheek", "mouthSmile", "mouthFrown", "mouthDimple",
                            "eyeSquint", "eyeWide", "noseSneer")


def test_a_take_keyed_sad_then_happy_switches_inside_the_take(bpy, keyed_scene, default_server):
    """Sad at the strip's start, happy halfway: ONE take, sad-like in its first third and
    happy-like in its last (against plain sad and happy takes of the same seed)."""
    import json

    _require(bpy, default_server, "generate")
    scene, s = keyed_scene, keyed_scene.flowvq
    obj = build_ict(bpy, "ICT sad-happy")
    s.target, s.takes, s.seed, s.blinks, s.phone_guidance = obj, 1, 3, False, 0.0
    half = 4 * FPS  # the clip is 8 s
    key_at(bpy, scene, STRIP_START, "sad")
    key_at(bpy, scene, STRIP_START + half, "happy")
    spy_generate(bpy)
    s.emotion_source = "LABEL"
    for emotion in ("sad", "happy"):  # plain takes, same seed, same audio
        s.emotion, s.intensity = emotion, 1.0
        spy_generate(bpy)
    keyed, sad, happy = obj.flowvq.takes
    assert [t.name for t in obj.flowvq.takes] == ["FlowVQ sad-happy s3 t1", "FlowVQ sad s3 t1",
                                                  "FlowVQ happy s3 t1"]
    keys = json.loads(keyed.provenance)["settings"]["emotion_keys"]
    assert keys == [["sad", 0.0, 1.0], ["happy", 4.0, 1.0]]

    def face(item):
        curves = curves_of(bpy, item.shape_action)
        paths = sorted(p for p in curves if p[0].split('"')[1].startswith(EMOTION_KEYS_OF_THE_FACE))
        return np.stack([curves[p][:, 1] for p in paths], 1)

    e, sad_mean, happy_mean = face(keyed), face(sad).mean(0), face(happy).mean(0)
    assert e.shape[1] >= 20
    n = len(e)
    first, last = e[: n // 3].mean(0), e[-(n // 3):].mean(0)
    dist = lambda x, ref: float(np.linalg.norm(x - ref))  # noqa: E731
    print(f"first third: to sad {dist(first, sad_mean):.3f}, to happy {dist(first, happy_mean):.3f};"
          f" last third: to sad {dist(last, sad_mean):.3f}, to happy {dist(last, happy_mean):.3f}")
    assert dist(first, sad_mean) < dist(first, happy_mean)
    assert dist(last, happy_mean) < dist(last, sad_mean)


def test_backend_lost_then_back_keeps_takes_and_reconnects(bpy, generated):
    """The backend goes away: the add-on says so and keeps every take; it comes back: work goes on."""
    import socket

    obj = bpy.data.objects[generated["obj"]]
    names = [t.name for t in obj.flowvq.takes]
    actions = set(bpy.data.actions.keys())
    with socket.socket() as s:  # the backend's port, now with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_at(bpy, port)
    bpy.ops.flowvq.check_backend(blocking=True)
    st = bpy.context.window_manager.flowvq_status
    assert not st.connected and "Not connected" in st.text
    report_error(bpy, lambda: bpy.ops.flowvq.generate(blocking=True))
    assert [t.name for t in obj.flowvq.takes] == names and set(bpy.data.actions.keys()) == actions
    back = Server("--port", str(port))  # the backend returns on the same address
    try:
        bpy.ops.flowvq.check_backend(blocking=True)
        assert bpy.context.window_manager.flowvq_status.connected
        s = bpy.context.scene.flowvq
        s.target, s.takes, s.seed = obj, 1, 11
        assert bpy.ops.flowvq.generate(blocking=True, timeout=240) == {"FINISHED"}
        assert [t.name for t in obj.flowvq.takes][: len(names)] == names
        assert len(obj.flowvq.takes) == len(names) + 1
    finally:
        back.stop()


def _glb_json(path: Path) -> dict:
    import json
    import struct

    data = path.read_bytes()
    magic, version, _ = struct.unpack("<4sII", data[:12])
    assert magic == b"glTF" and version == 2
    length, kind = struct.unpack("<I4s", data[12:20])
    assert kind == b"JSON"
    return json.loads(data[20:20 + length])


def test_export_and_import_a_take(bpy, generated, tmp_path):
    """Generate -> bake -> export .glb (weights animation, a key per frame), .fbx and Live Link
    Face .csv -> import the CSV: a new take beside the others whose curves equal the bake's."""
    import csv
    import json

    from flowvq_shared import livelink
    from flowvq_shared.channels import ARKIT_NAMES, CHANNEL_INDEX

    scene = bpy.context.scene
    obj = bpy.data.objects[generated["obj"]]
    s = scene.flowvq
    s.target, s.pose_mode, s.mirror, s.clamp = obj, "OBJECT", False, False
    bpy.ops.flowvq.calibration_reset()
    takes = obj.flowvq.takes
    plain = [i for i, t in enumerate(takes) if not t.baked and t.source == "flowvq"][:2]
    for i, t in enumerate(takes):
        t.kept = i in plain
    assert bpy.ops.flowvq.take_bake() == {"FINISHED"}
    bi = obj.flowvq.active_take
    baked = takes[bi]
    assert baked.baked and baked.source == "bake"
    assert [b["name"] for b in json.loads(baked.provenance)["baked_from"]] == \
        [takes[i].name for i in plain]
    # refused: a bad extension, nothing written
    bad = tmp_path / "take.obj"
    assert "choose a file ending in .glb, .fbx or .csv" in report_error(
        bpy, lambda: bpy.ops.flowvq.export_take(filepath=str(bad)))
    assert not bad.exists()
    # glTF: a weights animation with one key per frame of the take
    glb = tmp_path / "take.glb"
    assert bpy.ops.flowvq.export_take(filepath=str(glb)) == {"FINISHED"}
    gl = _glb_json(glb)
    weights = [(a, c) for a in gl.get("animations", []) for c in a["channels"]
               if c["target"]["path"] == "weights"]
    assert weights, gl.get("animations")
    anim, channel = weights[0]
    sampler = anim["samplers"][channel["sampler"]]
    assert gl["accessors"][sampler["input"]]["count"] == baked.frames
    mesh = gl["meshes"][gl["nodes"][channel["target"]["node"]]["mesh"]]
    assert len(mesh["primitives"][0]["targets"]) == len(obj.data.shape_keys.key_blocks) - 1
    assert obj.flowvq.active_take == bi  # the export left the audition as it was
    # FBX through Blender's exporter
    fbx = tmp_path / "take.fbx"
    assert bpy.ops.flowvq.export_take(filepath=str(fbx)) == {"FINISHED"}
    assert fbx.stat().st_size > 1000
    # Live Link Face CSV: the app's header, a row per frame
    path = tmp_path / "bake.csv"
    assert bpy.ops.flowvq.export_take(filepath=str(path)) == {"FINISHED"}
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == livelink.HEADER and len(table) == 1 + baked.frames
    # ... and back in as a take of its own, beside the generated ones
    actions = {a.name: a for a in bpy.data.actions}
    n = len(takes)
    assert bpy.ops.flowvq.import_livelink(filepath=str(path), frame_start=baked.frame_start) \
        == {"FINISHED"}
    assert len(takes) == n + 1 and obj.flowvq.active_take == n
    baked, imported = takes[bi], takes[n]  # adding to a collection may move its items
    assert imported.name == "LiveLink bake" and imported.source == "livelink:bake.csv"
    assert json.loads(imported.provenance)["source"] == "livelink:bake.csv"
    assert imported.shape_action["flowvq_source"] == "livelink:bake.csv"
    assert imported.frames == baked.frames and imported.frame_start == baked.frame_start
    assert all(a.name in bpy.data.actions for a in actions.values())  # nothing overwritten
    assert obj.data.shape_keys.animation_data.action == imported.shape_action
    # the model curves: equal on every ARKit channel (the CSV's 6 decimals)
    tk = sys.modules[ADDON + ".takes"]
    a, b = tk.take_of(baked), tk.take_of(imported)
    arkit = [CHANNEL_INDEX[c] for c in ARKIT_NAMES]
    np.testing.assert_allclose(b.expression[:, arkit], a.expression[:, arkit], atol=2e-6)
    np.testing.assert_allclose(b.pose[:, :3], a.pose[:, :3], atol=2e-6)
    # the shape-key curves: equal on every key driven by ARKit channels only
    mapping = tk.mapping_for(obj, a.names)
    arkit_keys = {d.key for d in mapping.drives
                  if all(c in arkit for c in d.channels)}
    ca, cb = curves_of(bpy, baked.shape_action), curves_of(bpy, imported.shape_action)
    assert len(arkit_keys) > 40
    for key in arkit_keys:
        p = (f'key_blocks["{key}"].value', 0)
        np.testing.assert_allclose(cb[p][:, 0], ca[p][:, 0])
        np.testing.assert_allclose(cb[p][:, 1], ca[p][:, 1], atol=2e-6)
    # a second import never replaces the first
    del baked, imported
    assert bpy.ops.flowvq.import_livelink(filepath=str(path)) == {"FINISHED"}
    assert takes[n + 1].name == "LiveLink bake.001" and takes[n].shape_action is not None
    # malformed capture: one readable line, nothing added
    broken = tmp_path / "broken.csv"
    broken.write_text("Timecode,BlendShapeCount\n00:00:00:00.000,61\n")
    msg = report_error(bpy, lambda: bpy.ops.flowvq.import_livelink(filepath=str(broken)))
    assert "not a Live Link Face CSV" in msg and len(takes) == n + 2


# ---------------------------------------------------------------------------- actors (issue #14)

VIDEOS = DATA / "video_with_audio"


@pytest.fixture(scope="module")
def actors_server(tmp_path_factory):
    """`flowvq serve --actors DIR` with one profile, 'anna' (made around the shipped checkpoint)."""
    from test_server_actors import make_profile

    root = tmp_path_factory.mktemp("addon_actors")
    make_profile(root / "anna", "anna")
    server = Server("--actors", str(root))
    yield server, root
    server.stop()


def actor_ids(bpy) -> list[str]:
    """The selector's items: what its dynamic enum's callback gives Blender (bl_rna's
    enum_items lists none for a dynamic enum)."""
    s = bpy.context.scene.flowvq
    return [i[0] for i in sys.modules[ADDON + ".properties"]._actor_items(s, bpy.context)]


def test_actor_selector_generates_with_the_chosen_actor(bpy, rig, actors_server, tmp_path):
    """Connect, see 'anna' in the selector, pick her, generate: the take's provenance says
    actor anna and its curves differ from the default model's take of the same seed. An actor
    the backend no longer offers stays selected, shown as such, and generating says why."""
    import json

    server, root = actors_server
    _require(bpy, server, "generate")
    scene = bpy.context.scene
    s = scene.flowvq
    scene.sequence_editor.active_strip = scene.sequence_editor.strips["speech"]
    saved = (s.takes, s.seed, s.target)
    obj = build_ict(bpy, "ICT actor")
    s.target, s.takes, s.seed = obj, 1, 5
    try:
        ids = actor_ids(bpy)
        assert ids[:2] == ["_default", "anna"], ids
        assert s.actor_choice == "_default" and s.actor == ""
        s.actor_choice = "anna"
        assert s.actor == "anna"
        assert bpy.ops.flowvq.generate(blocking=True, timeout=600) == {"FINISHED"}
        s.actor_choice = "_default"
        assert s.actor == ""
        assert bpy.ops.flowvq.generate(blocking=True, timeout=600) == {"FINISHED"}
        anna, plain = obj.flowvq.takes
        assert anna.name == "FlowVQ anna happy s5 t1" and plain.name == "FlowVQ happy s5 t1"
        for item, actor in ((anna, "anna"), (plain, "")):
            assert json.loads(item.provenance)["settings"]["actor"] == actor
            assert json.loads(item.shape_action["flowvq_provenance"])["settings"]["actor"] == actor
        ca, cp = curves_of(bpy, anna.shape_action), curves_of(bpy, plain.shape_action)
        diff = max(float(np.abs(ca[p][:, 1] - cp[p][:, 1]).max()) for p in ca)
        print(f"anna vs default model, same seed: largest shape-key difference {diff:.3f}")
        assert diff > 0.01
        # the profile goes away: the backend re-reads its folder at every hello
        s.actor = "anna"
        shutil.move(root / "anna", tmp_path / "anna")
        try:
            assert bpy.ops.flowvq.check_backend(blocking=True) == {"FINISHED"}
            assert actor_ids(bpy) == ["_default", "anna"]  # kept, marked not offered
            assert s.actor_choice == "anna"
            msg = report_error(bpy, lambda: bpy.ops.flowvq.generate(blocking=True, timeout=600))
            assert "unknown actor 'anna'" in msg, msg
            assert len(obj.flowvq.takes) == 2
        finally:
            shutil.move(tmp_path / "anna", root / "anna")
        assert bpy.ops.flowvq.check_backend(blocking=True) == {"FINISHED"}
        st = bpy.context.window_manager.flowvq_status
        assert [a["id"] for a in json.loads(st.actors)] == ["anna"]
    finally:
        s.actor = ""
        s.takes, s.seed, s.target = saved


def test_learn_actor_refusals(bpy, tmp_path):
    """Learn Actor without footage, with a bad name, and with footage the CLI refuses (its
    `error:` line becomes the report); nothing runs for minutes."""
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.backend_python, prefs.actors_dir = sys.executable, str(tmp_path / "actors")
    # not connected to a backend it did not start: the local `flowvq actor learn` route
    sys.modules[ADDON + ".tasks"].set_disconnected("testing the local Learn Actor")
    scene = bpy.context.scene
    s = scene.flowvq
    se = scene.sequence_editor_create()
    active = se.active_strip
    assert not [st for st in se.strips_all if st.type == "MOVIE"]
    s.learn_name = "carla"
    msg = report_error(bpy, lambda: bpy.ops.flowvq.learn_actor(blocking=True))
    assert "no movie strip" in msg, msg
    s.learn_name = "../carla"
    msg = report_error(bpy, lambda: bpy.ops.flowvq.learn_actor(
        blocking=True, filepath=str(VIDEOS / "theresa_may_5s.mp4")))
    assert "actor name" in msg and "actor profile id" in msg, msg
    s.learn_name = "carla"
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    msg = report_error(bpy, lambda: bpy.ops.flowvq.learn_actor(blocking=True,
                                                               filepath=str(not_video)))
    # the CLI's one line, e.g. "notes.mp4: cannot open the video"
    assert "FlowVQ: Learn Actor 'carla': notes.mp4:" in msg and "Traceback" not in msg, msg
    # a real movie strip, too short to learn from: the CLI's own refusal
    strip = se.strips.new_movie("footage", str(VIDEOS / "theresa_may_5s.mp4"), 2, 1)
    se.active_strip = strip
    try:
        msg = report_error(bpy, lambda: bpy.ops.flowvq.learn_actor(blocking=True))
        assert "too short" in msg, msg
    finally:
        se.strips.remove(strip)
        se.active_strip = active
    # several selected movie strips: one person's recordings, learned together (in timeline order,
    # each file once); a selected strip whose file is gone is named before anything runs
    ops_actors = sys.modules[ADDON + ".ops_actors"]
    later = se.strips.new_movie("interview", str(VIDEOS / "theresa_may_5s.mp4"), 3, 200)
    first = se.strips.new_movie("screen_test", str(VIDEOS / "videoretalking_face4_woman_bluebg_7s.mp4"), 4, 1)
    again = se.strips.new_movie("interview_cut", str(VIDEOS / "theresa_may_5s.mp4"), 5, 400)
    gone = tmp_path / "gone.mp4"
    shutil.copy(VIDEOS / "theresa_may_5s.mp4", gone)
    missing = se.strips.new_movie("lost", str(gone), 6, 600)
    try:
        for st in se.strips_all:
            st.select = st in (later, first, again)
        se.active_strip = later
        assert [st.name for st in ops_actors.movie_strips(scene)] == ["screen_test", "interview", "interview_cut"]
        assert ops_actors.videos_of(scene, "") == [str(VIDEOS / "videoretalking_face4_woman_bluebg_7s.mp4"),
                                                   str(VIDEOS / "theresa_may_5s.mp4")]
        first.select = again.select = False  # one selected: the active strip, as before
        assert ops_actors.movie_strips(scene) == [later]
        gone.unlink()
        for st in (later, missing):
            st.select = True
        msg = report_error(bpy, lambda: bpy.ops.flowvq.learn_actor(blocking=True))
        assert "movie strip 'lost' points to a missing file" in msg, msg
        assert not (tmp_path / "actors" / "carla").exists()  # nothing ran
    finally:
        for st in (later, first, again, missing):
            se.strips.remove(st)
        se.active_strip = active
    st = bpy.context.window_manager.flowvq_status
    assert not st.busy and not sys.modules[ADDON + ".tasks"].TASKS


def test_learn_actor_runs_in_the_background_and_cancels(bpy, tmp_path):
    """The UI path: the learn runs as a subprocess the timer polls (stage and elapsed time in the
    status), Cancel terminates it and keeps the partial folder for resuming."""
    tasks = sys.modules[ADDON + ".tasks"]
    ops_actors = sys.modules[ADDON + ".ops_actors"]
    actors = sys.modules[ADDON + ".actors"]
    actor_dir = tmp_path / "actors" / "dana"
    video = VIDEOS / "mimictalk_German_20s.mp4"  # 20 s: long enough to be learned from
    if not video.is_file():
        pytest.skip(f"{video} not found")
    cmd = actors.learn_command(sys.executable, str(video), str(actor_dir))
    spec = ops_actors.LearnSpec("dana", str(actor_dir), " ".join(cmd), time.monotonic())
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    task = tasks.ProcessTask(proc, spec)
    tasks.TASKS.append(task)
    st = bpy.context.window_manager.flowvq_status
    st.busy = True
    deadline = time.monotonic() + 120
    while not (actor_dir / "work").is_dir() and time.monotonic() < deadline:
        assert tasks.drain() is not None and proc.poll() is None, task.tail()
        time.sleep(0.2)
    time.sleep(1.1)
    tasks.drain()
    assert st.stage.startswith("track") and st.stage.endswith(" s"), st.stage
    bpy.ops.flowvq.cancel()  # the panel's Cancel button (Esc does the same)
    while tasks.drain() is not None and time.monotonic() < deadline + 30:
        time.sleep(0.1)
    assert task.done and proc.poll() is not None
    assert task.error[0] == "stopped" and "resumes" in task.error[1], task.error
    assert (actor_dir / "work").is_dir()  # the partial work stays, for resuming
    assert not st.busy and not tasks.TASKS


def test_learn_actor_on_a_backend_it_did_not_start_goes_over_the_protocol(bpy, actors_server, tiny_server,
                                                                           tmp_path):
    """Connected to a backend the add-on did not start, Learn Actor uploads the footage in a
    `learn_actor` request (the backend learns into its own --actors folder, which the add-on
    cannot see): its refusal comes back as the report, nothing is written on this side; a backend
    without --actors is named as such before anything is uploaded."""
    server, root = actors_server
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.backend_python, prefs.actors_dir = sys.executable, str(tmp_path / "local_actors")
    s = bpy.context.scene.flowvq
    s.learn_name, s.learn_mouth_bank = "tess", False  # the option travels in the request (the protocol reads it)
    video = VIDEOS / "theresa_may_5s.mp4"  # 5 s: the backend's learn refuses it as too short
    if not video.is_file():
        pytest.skip(f"{video} not found")
    point_at(bpy, server.port)
    assert bpy.ops.flowvq.check_backend(blocking=True) == {"FINISHED"}
    msg = report_error(bpy, lambda: bpy.ops.flowvq.learn_actor(blocking=True, timeout=300, filepath=str(video)))
    assert "too short" in msg and "Traceback" not in msg, msg
    assert "Learn Actor 'tess'" not in msg  # the backend's own refusal, not the local CLI's (LearnSpec.failure)
    assert not (tmp_path / "local_actors" / "tess").exists()  # the local CLI never ran
    assert not (root / "tess" / "actor.json").exists()
    point_at(bpy, tiny_server.port)  # no --actors
    assert bpy.ops.flowvq.check_backend(blocking=True) == {"FINISHED"}
    msg = report_error(bpy, lambda: bpy.ops.flowvq.learn_actor(blocking=True, filepath=str(video)))
    assert "cannot learn actors" in msg and "--actors" in msg, msg
    st = bpy.context.window_manager.flowvq_status
    assert not st.busy and not sys.modules[ADDON + ".tasks"].TASKS


def test_a_learned_actor_is_offered_at_once(bpy, actors_server):
    """A learn that ends well refreshes the backend's actor list (the server re-reads its folder
    at every hello) and reports the profile's fit. The minutes-long `flowvq actor learn` is stood
    in for by a command that writes a profile into the folder, as the real one does at its end."""
    import json

    server, root = actors_server
    point_at(bpy, server.port)
    assert bpy.ops.flowvq.check_backend(blocking=True) == {"FINISHED"}
    tasks = sys.modules[ADDON + ".tasks"]
    ops_actors = sys.modules[ADDON + ".ops_actors"]
    actor_dir = root / "zoe"
    write = ("import sys; sys.path.insert(0, sys.argv[2]); from pathlib import Path; "
             "from test_server_actors import make_profile; make_profile(Path(sys.argv[1]), 'zoe')")
    cmd = [sys.executable, "-c", write, str(actor_dir), str(Path(__file__).parent)]
    spec = ops_actors.LearnSpec("zoe", str(actor_dir), "learn zoe", time.monotonic(), blocking=True)
    task = tasks.ProcessTask(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True), spec)
    deadline = time.monotonic() + 120
    while not task.done and time.monotonic() < deadline:
        task.poll()
        time.sleep(0.1)
    try:
        assert task.done and task.error is None, (task.error, task.tail())
        assert task.summary.startswith("learned actor 'zoe' into ") and "r 0.5" in task.summary
        st = bpy.context.window_manager.flowvq_status
        assert [a["id"] for a in json.loads(st.actors)] == ["anna", "zoe"]
        assert actor_ids(bpy) == ["_default", "anna", "zoe"]
    finally:
        import shutil

        shutil.rmtree(actor_dir, ignore_errors=True)


# ---------------------------------------------------------------------------- dub

@pytest.fixture(scope="module")
def dub_media(tmp_path_factory):
    """A real 2 s shot (25 fps, 450 x 450) cut from ../shared/data, and its own sound as a wav."""
    import imageio_ffmpeg

    from test_server_dub import cut_shot

    source = DATA / "video_with_audio" / "obama_weekly_address_20s.mp4"
    if not source.is_file():
        pytest.skip(f"real data not available: {source} is absent")
    folder = tmp_path_factory.mktemp("dub_media")
    shot = cut_shot(source, folder / "obama 2s.mp4")
    line = folder / "line.wav"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(shot), "-vn",
                    "-ac", "1", "-ar", "16000", str(line)], check=True, timeout=60)
    return shot, line


def test_dub_movie_strip(bpy, default_server, dub_media, tmp_path):
    """Dub Movie Strip on a movie strip and a sound strip, against a real backend: the shot and the
    line are uploaded, every dubbed frame lands in a new numbered folder, and an image strip of them
    sits on the channel above the movie strip with its first frame and length. A line longer than
    the shot is refused with the backend's message, and that attempt leaves no folder behind."""
    import json

    _require(bpy, default_server, "dub")
    _require(bpy, default_server, "generate")
    shot, line = dub_media
    scene = bpy.context.scene
    s = scene.flowvq
    saved = (scene.render.fps, scene.render.fps_base, s.emotion_source, s.actor, s.dub_dir, s.dub_line, s.target)
    scene.render.fps, scene.render.fps_base = 24, 1.0  # the shot is 25 fps: the report says what that means
    s.emotion_source, s.actor, s.dub_dir, s.dub_line = "LABEL", "", str(tmp_path / "dubs"), "SOUND"
    se = scene.sequence_editor_create()
    for strip in se.strips_all:
        strip.select = False
    movie = se.strips.new_movie("shot", str(shot), 20, 31)
    sound = se.strips.new_sound("new line", str(line), 22, 31)
    movie.select = True
    se.active_strip = sound
    st = bpy.context.window_manager.flowvq_status
    made = []
    try:
        assert bpy.ops.flowvq.dub_movie_strip(blocking=True, timeout=600) == {"FINISHED"}, st.last_error
        dubbed = [x for x in se.strips_all if x.type == "IMAGE" and x.name.startswith("shot dub")]
        made += [x.name for x in dubbed]
        assert len(dubbed) == 1, [x.name for x in se.strips_all]
        strip = dubbed[0]
        print(st.last_report)
        assert strip.name == "shot dub 001" and strip.channel == movie.channel + 1
        assert strip.frame_start == movie.frame_start == 31
        assert len(strip.elements) == movie.frame_duration == 50
        assert strip.frame_final_duration == movie.frame_final_duration
        folder = tmp_path / "dubs" / "shot_dub_001"
        files = sorted(folder.glob("frame_*.png"))
        assert [f.name for f in files[:2]] == ["frame_00001.png", "frame_00002.png"] and len(files) == 50
        assert Path(bpy.path.abspath(strip.directory)) == folder and not list(folder.glob("*.part"))
        assert strip.elements[0].orig_width == 450 and strip.elements[0].orig_height == 450
        doc = json.loads((folder / "dub.json").read_text())
        assert doc["movie_strip"] == "shot" and doc["result"]["frames"] == 50
        assert "25 fps" in st.last_report and "24 fps" in st.last_report and "whole file" in st.last_report
        # a line longer than the shot: refused, nothing added, its folder gone
        sound.sound.filepath = str(SPEECH)  # 8 s
        msg = report_error(bpy, lambda: bpy.ops.flowvq.dub_movie_strip(blocking=True, timeout=300))
        assert "8.00 s" in msg and "2.00 s" in msg, msg
        assert sorted(p.name for p in (tmp_path / "dubs").iterdir()) == ["shot_dub_001"]
        assert [x.name for x in se.strips_all if x.type == "IMAGE" and x.name.startswith("shot dub")] == made
        s.dub_line, s.target = "TAKE", None
        msg = report_error(bpy, lambda: bpy.ops.flowvq.dub_movie_strip(blocking=True))
        assert "no active take" in msg
    finally:
        for name in ["shot", "new line", *made]:
            if name in se.strips_all:
                se.strips.remove(se.strips_all[name])
        scene.render.fps, scene.render.fps_base, s.emotion_source, s.actor, s.dub_dir, s.dub_line, s.target = saved
