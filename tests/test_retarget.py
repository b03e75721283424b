"""Retargeting by name (bpy-free): side conventions, splits, merges, calibration, presets."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blender_addon import posemap, retarget  # noqa: E402
from flowvq_shared.channels import ARKIT_NAMES, EXPRESSION_NAMES  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize("name", ["eyeBlinkLeft", "eyeBlink_L", "EyeBlink.L", "eye_blink_left",
                                  "EYEBLINK_LEFT", "Left_EyeBlink", "LeftEyeBlink", "l_eyeBlink",
                                  "eyeBlinkL", "eyeBlink-l", "eyeblink left"])
def test_left_eye_blink_spellings(name):
    assert retarget.split_name(name) == ("eyeblink", "L")


@pytest.mark.parametrize("name,expected", [
    ("mouthSmileRight", ("mouthsmile", "R")), ("browInnerUp", ("browinnerup", "")),
    ("jawOpen", ("jawopen", "")), ("chinCleft", ("chincleft", "")), ("pupil", ("pupil", "")),
    ("cheekRaiser_L", ("cheekraise", "L")), ("Right", ("right", ""))])
def test_names_that_must_not_be_split_wrongly(name, expected):
    assert retarget.split_name(name) == expected


def test_every_arkit_name_maps_to_itself_under_other_conventions():
    variants = []
    for n in ARKIT_NAMES:
        base, side = retarget.split_name(n)
        stem = n[:-4] if n.endswith("Left") else n[:-5] if n.endswith("Right") else n
        variants.append(f"{stem}_{side}" if side else n.upper())
    m = retarget.match(EXPRESSION_NAMES, variants)
    driven = {d.key: EXPRESSION_NAMES[d.channels[0]] for d in m.drives}
    assert len(driven) == 52 and all(d.kind == "exact" for d in m.drives)
    for variant, original in zip(variants, ARKIT_NAMES):
        assert driven[variant] == original


def test_split_merge_unmatched_and_unused():
    keys = ["Basis", "browInnerUp_L", "browInnerUp_R", "mouthSmile", "jawOpen", "myCustomShape"]
    m = retarget.match(EXPRESSION_NAMES, keys)
    assert m.split == {"browInnerUp": ("browInnerUp_L", "browInnerUp_R")}
    assert m.merged == {"mouthSmile": ("mouthSmileLeft", "mouthSmileRight")}
    assert m.unused_keys == ("myCustomShape",)
    assert "tongueOut" in m.unmatched_channels and "jawOpen" not in m.unmatched_channels
    t = 5
    exp = np.zeros((t, 64), np.float32)
    exp[:, EXPRESSION_NAMES.index("browInnerUp")] = 0.5
    exp[:, EXPRESSION_NAMES.index("mouthSmileLeft")] = 0.2
    exp[:, EXPRESSION_NAMES.index("mouthSmileRight")] = 0.6
    values = retarget.key_values(m, exp)
    np.testing.assert_allclose(values["browInnerUp_L"], 0.5)
    np.testing.assert_allclose(values["browInnerUp_R"], 0.5)
    np.testing.assert_allclose(values["mouthSmile"], 0.4, rtol=1e-6)


def test_mirror_swaps_sides():
    m = retarget.match(EXPRESSION_NAMES, ["eyeBlink_L"], mirror=True)
    assert EXPRESSION_NAMES[m.drives[0].channels[0]] == "eyeBlinkRight"


def test_calibration_applies_gain_offset_and_clamp_and_round_trips(tmp_path):
    cal = retarget.Calibration(gains={"jawOpen": 2.0}, offsets={"jawOpen": -0.1}, clamp=(0, 1))
    m = retarget.match(EXPRESSION_NAMES, ["jawOpen", "eyeBlinkLeft"])
    exp = np.zeros((3, 64), np.float32)
    exp[:, EXPRESSION_NAMES.index("jawOpen")] = [0.0, 0.3, 0.9]
    exp[:, EXPRESSION_NAMES.index("eyeBlinkLeft")] = [0.1, 0.2, 0.3]
    v = retarget.key_values(m, exp, cal)
    np.testing.assert_allclose(v["jawOpen"], [0.0, 0.5, 1.0], atol=1e-6)  # -0.1 clamps to 0
    np.testing.assert_allclose(v["eyeBlinkLeft"], [0.1, 0.2, 0.3], atol=1e-6)
    path = tmp_path / "preset.json"
    cal.save(path)
    assert retarget.Calibration.load(path) == cal


@pytest.mark.parametrize("text,msg", [
    ("{", "not valid JSON"), ('{"kind": "other", "format": 1}', "not a FlowVQ calibration"),
    ('{"kind": "flowvq_calibration", "format": 2}', "format 2"),
    ('{"kind": "flowvq_calibration", "format": 1, "gains": {"jawOpen": "x"}}', "gains"),
    ('{"kind": "flowvq_calibration", "format": 1, "clamp": [1, 0]}', "clamp")])
def test_bad_presets_are_refused_with_a_reason(text, msg):
    with pytest.raises(ValueError, match=msg):
        retarget.Calibration.from_json(text)


def test_key_values_checks_the_shape():
    m = retarget.match(EXPRESSION_NAMES, ["jawOpen"])
    with pytest.raises(ValueError, match=r"\(T, 64\)"):
        retarget.key_values(m, np.zeros((4, 52)))


def test_ict_facekit_names():
    npz = DATA / "rig_ict_facekit" / "ict_facekit_blendshapes.npz"
    if not npz.is_file():
        pytest.skip(f"ICT-FaceKit rig not found at {npz} (../shared/data is absent)")
    names = [str(n) for n in np.load(npz)["names"]]
    m = retarget.match(EXPRESSION_NAMES, names)
    primary_missing = [n for n in m.unmatched_channels if n in ARKIT_NAMES]
    assert primary_missing == ["tongueOut"]
    assert m.split == {"browInnerUp": ("browInnerUp_L", "browInnerUp_R"),
                       "cheekPuff": ("cheekPuff_L", "cheekPuff_R")}
    assert set(m.unused_keys) == {"PupilDilate_L", "PupilDilate_R"}
    s = m.summary()
    assert "unmatched channels: tongueOut" in s and "cheekPuff -> cheekPuff_L/cheekPuff_R" in s


def test_pose_mapping_axes():
    pose = np.array([[0.1, 0.2, 0.3, 1.0, 2.0, 3.0]], np.float32)
    obj = posemap.for_object(pose, translation_scale=0.5, base_location=(0, 0, 1))
    np.testing.assert_allclose(obj.rotation_euler[0], [0.1, -0.3, 0.2], rtol=1e-6)
    np.testing.assert_allclose(obj.location[0], [0.5, -1.5, 2.0], rtol=1e-6)
    bone = posemap.for_bone(pose)
    np.testing.assert_allclose(bone.rotation_euler[0], [0.1, 0.2, 0.3], rtol=1e-6)
    q = posemap.euler_to_quaternion(np.array([[0.0, 0.0, np.pi / 2]]))
    np.testing.assert_allclose(q[0], [np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)], atol=1e-6)


# ---------------------------------------------------------------------------- results (bpy-free)

import ast  # noqa: E402

from blender_addon import results  # noqa: E402
from flowvq_shared.protocol import ProtocolError  # noqa: E402
from flowvq_shared.settings import FIELDS, MAX_TAKES, GenerateSettings  # noqa: E402
from flowvq_shared.takes import Take  # noqa: E402

CORE = ("client", "discovery", "retarget", "posemap", "plates", "results", "actors", "dubs", "_shared")


@pytest.mark.parametrize("module", CORE)
def test_core_modules_never_import_bpy(module):
    tree = ast.parse((ROOT / "blender_addon" / f"{module}.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom)}
    assert not imported & {"bpy", "bpy_extras", "mathutils", "torch"}, imported


def test_only_tasks_reports():
    """One place reports job and operator outcomes: no other module calls report()."""
    for path in sorted((ROOT / "blender_addon").glob("*.py")):
        if path.name != "tasks.py":
            assert ".report(" not in path.read_text(), path.name


def test_panel_properties_come_from_the_contract():
    for name in results.PANEL_FIELDS:
        spec, md = results.property_spec(name), FIELDS[name].metadata
        assert spec["name"] == md["label"] and spec["default"] == FIELDS[name].default
        if md["lo"] is not None:
            assert spec["min"] == md["lo"] and spec["max"] == min(md["hi"], results.INT_MAX)
    assert results.property_spec("takes")["max"] == MAX_TAKES
    assert results.property_spec("takes")["soft_max"] == 16
    assert [i[0] for i in results.property_spec("emotion")["items"]] == \
        list(FIELDS["emotion"].metadata["choices"])


def test_request_is_the_contracts_wire_form():
    s = results.settings_from({"emotion": "happy", "takes": 3, "seed": 7,
                               "phone_guidance": np.float32(0.4).item(), "blinks": False}, 24.0)
    assert s.phone_guidance == 0.4 and s.fps == 24.0  # float32 panel values: the typed decimals
    req = results.generate_request(s, b"RIFF", b"PNG")
    assert req == {"type": "generate", **GenerateSettings.to_wire(s), "audio": b"RIFF",
                   "reference_image": b"PNG"}
    with pytest.raises(ProtocolError, match="takes"):
        results.settings_from({"takes": MAX_TAKES + 1}, 25.0)


def _take(**kw):
    return Take(expression=np.zeros((10, 64)), pose=np.zeros((10, 6)),
                settings=GenerateSettings(emotion="sad", seed=5, fps=25.0), index=2, **kw)


def test_results_are_read_with_take_from_wire():
    wire = _take(guidance_note="recogniser failed", blink_starts=(3,)).to_wire()
    (t,) = results.takes_from_result({"type": "result", "takes": [wire]})
    assert t.guidance_note == "recogniser failed" and t.blink_starts == (3,) and t.seed == 5
    assert results.take_name(t) == "FlowVQ sad s5 t2"
    assert results.take_name(t, "reference") == "FlowVQ reference s5 t2"
    assert results.take_name(_take(source="livelink:cap 3.csv")) == "LiveLink cap 3"
    with pytest.raises(results.TakeError, match="no takes"):
        results.takes_from_result({"takes": []})
    with pytest.raises(results.TakeError, match="take 1"):
        results.takes_from_result({"takes": [{**wire, "pose": np.zeros((3, 6))}]})


def test_provenance_round_trips_through_json():
    t = _take(guidance_applied=0.0, guidance_note="no phones")
    prov = results.provenance_of(results.provenance_json(t, baked_from=[]))
    assert prov["baked_from"] == [] and prov["guidance_note"] == "no phones"
    back = results.take_from(t.expression, t.pose, prov)
    assert back.provenance() == t.provenance()
    assert results.provenance_of("not json") == {}


def test_resample_to_the_scene_rate():
    t = Take(expression=np.linspace(0, 1, 61)[:, None].repeat(64, 1), pose=np.zeros((61, 6)),
             settings=GenerateSettings(fps=60.0))
    r = results.resample(t, 30.0)
    assert r.fps == 30.0 and r.n_frames == 31
    np.testing.assert_allclose(r.expression[:, 0], np.linspace(0, 1, 31), atol=1e-6)
    assert results.resample(t, 60.0) is t


def test_emotion_keys_from_the_timeline():
    """Frames -> seconds from the audio's first frame at the scene rate; keys before it clamped."""
    keys, note = results.emotion_keys_from_frames([(59, "happy", np.float32(0.6).item()),
                                                   (11, "sad", 1.0)], 11, 24.0)
    assert keys == (("sad", 0.0, 1.0), ("happy", 2.0, 0.6)) and note == ""
    # 23.976 fps: fps / fps_base
    keys, _ = results.emotion_keys_from_frames([(1, "sad", 1.0), (25, "happy", 1.0)], 1, 24000 / 1001)
    assert keys[1][1] == pytest.approx(1.001)
    # before the audio: the last such key holds from 0 s, earlier ones dropped, and said so
    keys, note = results.emotion_keys_from_frames(
        [(2, "angry", 1.0), (5, "sad", 0.5), (59, "happy", 1.0)], 11, 24.0)
    assert keys == (("sad", 0.0, 0.5), ("happy", 2.0, 1.0))
    assert "frame 5 is before the audio's start (frame 11)" in note and "1 earlier" in note
    keys, note = results.emotion_keys_from_frames([(5, "sad", 1.0), (11, "angry", 1.0)], 11, 24.0)
    assert keys == (("angry", 0.0, 1.0),) and "dropped" in note
    with pytest.raises(results.TakeError, match="two emotion keys at frame 30"):
        results.emotion_keys_from_frames([(30, "sad", 1.0), (30, "happy", 1.0)], 1, 24.0)
    with pytest.raises(results.TakeError, match="no emotion keys"):
        results.emotion_keys_from_frames([], 1, 24.0)
    with pytest.raises(ProtocolError, match="intensity"):
        results.emotion_keys_from_frames([(1, "sad", 3.0)], 1, 24.0)
    s = results.with_emotion_keys(GenerateSettings(seed=7), (("sad", 0.0, 0.5), ("happy", 2.0, 1.0)))
    assert s.emotion == "sad" and s.intensity == 0.5 and s.keyed
    assert results.generate_request(s, b"RIFF")["emotion_keys"] == [["sad", 0.0, 0.5],
                                                                    ["happy", 2.0, 1.0]]
    t = Take(expression=np.zeros((10, 64)), pose=np.zeros((10, 6)),
             settings=s.replace(emotion_keys=(("sad", 0.0, 1.0), ("sad", 1.0, 0.5),
                                              ("happy", 2.0, 1.0))))
    assert results.take_name(t) == "FlowVQ sad-happy s7 t1"
    assert results.marker_name("happy", np.float32(0.6).item()) == "FlowVQ happy 0.6"
    assert results.marker_name("sad", 1.0) == "FlowVQ sad"


# ---------------------------------------------------------------------------- actors (bpy-free)

from blender_addon import actors  # noqa: E402


def test_actor_selector_items():
    hello = [{"id": "anna", "fit": {"lipsync_r": {"actor": 0.5}}, "sources": 2}, {"id": 3}, "x",
             {"id": "ben"}]
    offered = actors.offered(hello)
    assert [a["id"] for a in offered] == ["anna", "ben"]
    items = actors.enum_items(offered, "")
    assert [i[0] for i in items] == [actors.DEFAULT, "anna", "ben"]
    assert items[0][1] == "Default model" and [i[4] for i in items] == [0, 1, 2]
    assert "0.5" in items[1][2]
    # a chosen id the backend no longer offers stays, marked: the selection never jumps
    gone = actors.enum_items(offered, "carl")
    assert gone[-1][:2] == ("carl", "carl (not offered)") and len(gone) == 4
    with pytest.raises(ProtocolError):
        GenerateSettings(actor=actors.DEFAULT)  # the sentinel can never be an actor's id


def test_actor_name_learn_command_stage_and_error(tmp_path):
    import json

    assert actors.check_name(" anna ") == "anna"
    for bad in ("", "../anna", "a b"):
        with pytest.raises(ProtocolError):
            actors.check_name(bad)
    assert actors.learn_command("py", "v.mp4", "/a/anna") == \
        ["py", "-m", "flowvq", "actor", "learn", "v.mp4", "-o", "/a/anna", "-q"]
    assert actors.learn_command("py", "v.mp4", "/a/anna", mouth_bank=False)[-1] == "--no-mouth-bank"
    assert actors.learn_command("py", ["a.mp4", "b.mov"], "/a/anna") == \
        ["py", "-m", "flowvq", "actor", "learn", "a.mp4", "b.mov", "-o", "/a/anna", "-q"]  # one person's recordings
    d = tmp_path / "anna"
    assert actors.learn_stage(str(d)) == ("track", 0.0)
    (d / "work").mkdir(parents=True)
    (d / "work" / "timing.json").write_text(json.dumps({"track_0": 3.0, "dataset": 1.0}))
    assert actors.learn_stage(str(d)) == ("fine-tune", 2 / 8)
    assert actors.learn_stage(str(d), videos=2) == ("track 2/2", 1 / 9)
    (d / "work" / "timing.json").write_text(json.dumps(dict.fromkeys(["track_0", "dataset", "finetune", "estimate"], 1.0)))
    assert actors.learn_stage(str(d)) == ("voice map", 4 / 8)  # the CLI's stages, in its order
    assert set(actors.STAGE_LABELS) == set(actors.LEARN_STAGES)
    (d / "work" / "timing.json").write_text("{half")  # being written: read as the start
    assert actors.learn_stage(str(d))[1] == 0.0
    assert actors.error_line(["warn", "error: too short: 5.0 s", ""]) == "too short: 5.0 s"
    assert actors.error_line(["Traceback ..."]) == ""
    assert actors.elapsed(75) == "1 min 15 s" and actors.elapsed(9.6) == "9 s"
