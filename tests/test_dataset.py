"""The dataset format: write, read back, refuse what breaks the contract, import Live Link Face."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from flowvq.training.dataset import (
    Dataset, DatasetWriter, Item, import_livelink, n_frames_for, resample_curves,
)
from flowvq.errors import BadAudio, BadRequest
from flowvq_shared.channels import ARKIT_NAMES, CHANNEL_INDEX, EMOTIONS, EXPRESSION_NAMES


def _utterance(rng, seconds=1.2, sr=16000, fps=25.0):
    n = int(seconds * sr)
    t = np.arange(n) / sr
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    frames = n_frames_for(int(round(seconds * 16000)), fps)
    exp = rng.uniform(0, 1, (frames, 64)).astype(np.float32)
    pose = rng.normal(0, 0.05, (frames, 6)).astype(np.float32)
    return audio, exp, pose


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "ds"
    written = []
    with DatasetWriter(path, fps=25.0, meta={"seed": 3}) as w:
        for i, emo in enumerate(["happy", "sad", "Surprise"]):
            audio, exp, pose = _utterance(rng, seconds=1.0 + 0.3 * i)
            w.add(f"u{i:06d}", audio, 16000, exp, pose, emo, speaker="en-us+f3 s170 p60",
                  source="synthetic")
            written.append((audio, exp, pose))
        assert not (path / "dataset.json").exists()  # the index appears only at close
    ds = Dataset.open(path)
    assert len(ds) == 3 and ds.fps == 25.0 and ds.meta == {"seed": 3}
    assert [it["emotion"] for it in ds.items] == ["happy", "sad", "surprised"]
    doc = json.loads((path / "dataset.json").read_text())
    assert doc["expression_names"] == list(EXPRESSION_NAMES) and doc["emotions"] == list(EMOTIONS)
    for item, (audio, exp, pose), meta in zip(ds, written, ds.items):
        assert isinstance(item, Item)
        assert item.speaker == "en-us+f3 s170 p60" and item.source == "synthetic"
        assert item.audio.dtype == np.float32 and item.audio.shape == audio.shape
        assert np.max(np.abs(item.audio - audio)) < 1e-4  # PCM16 quantisation only
        np.testing.assert_array_equal(item.expression, exp)
        np.testing.assert_array_equal(item.pose, pose)
        assert meta["n_frames"] == math.ceil(meta["duration"] * 25.0 - 1e-9) == item.n_frames


def test_resamples_audio_and_curves(tmp_path):
    rng = np.random.default_rng(1)
    sr = 22050
    audio = rng.normal(0, 0.1, sr * 2).astype(np.float32)  # 2 s
    t60 = np.arange(120) / 60.0
    exp = np.zeros((120, 64), np.float32)
    exp[:, 17] = t60  # a ramp survives interpolation exactly
    pose = np.zeros((120, 6), np.float32)
    with DatasetWriter(tmp_path / "d", fps=30.0) as w:
        w.add("a", np.stack([audio, audio], 1), sr, exp, pose, "neutral", fps=60.0)
    item = Dataset.open(tmp_path / "d")[0]
    assert item.audio.shape == (32000,) and item.expression.shape == (60, 64)
    np.testing.assert_allclose(item.expression[:, 17], np.arange(60) / 30.0, atol=1e-6)


def test_writer_refuses_bad_items(tmp_path):
    rng = np.random.default_rng(2)
    audio, exp, pose = _utterance(rng)
    w = DatasetWriter(tmp_path / "d")
    with pytest.raises(BadRequest, match="unknown emotion"):
        w.add("a", audio, 16000, exp, pose, "bored")
    with pytest.raises(BadRequest, match="expression must be"):
        w.add("a", audio, 16000, exp[:, :52], pose, "sad")
    bad = exp.copy()
    bad[3, 3] = np.nan
    with pytest.raises(BadRequest, match="NaN"):
        w.add("a", audio, 16000, bad, pose, "sad")
    with pytest.raises(BadRequest, match="frames but the audio lasts"):
        w.add("a", audio, 16000, exp[:-5], pose[:-5], "sad")
    with pytest.raises(BadRequest, match="bad item id"):
        w.add("../evil", audio, 16000, exp, pose, "sad")
    w.add("a", audio, 16000, exp[:-1], pose[:-1], "sad")  # one frame short: padded
    with pytest.raises(BadRequest, match="duplicate"):
        w.add("a", audio, 16000, exp, pose, "sad")
    w.close()
    assert Dataset.open(tmp_path / "d")[0].n_frames == exp.shape[0]
    with pytest.raises(BadRequest, match="already holds"):
        DatasetWriter(tmp_path / "d")


def test_failed_build_leaves_no_index(tmp_path):
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "d") as w:
            audio, exp, pose = _utterance(np.random.default_rng(3))
            w.add("a", audio, 16000, exp, pose, "happy")
            raise RuntimeError("interrupted")
    with pytest.raises(BadRequest, match="no dataset.json"):
        Dataset.open(tmp_path / "d")


def test_open_validates(tmp_path):
    with DatasetWriter(tmp_path / "d") as w:
        audio, exp, pose = _utterance(np.random.default_rng(4))
        w.add("a", audio, 16000, exp, pose, "happy")
    index = tmp_path / "d" / "dataset.json"
    good = json.loads(index.read_text())
    for change, message in [({"kind": "other"}, "kind"), ({"format": 2}, "format"),
                            ({"expression_names": good["expression_names"][::-1]}, "expression_names"),
                            ({"emotions": good["emotions"][:8]}, "emotions")]:
        index.write_text(json.dumps({**good, **change}))
        with pytest.raises(BadRequest, match=message):
            Dataset.open(tmp_path / "d")
    escaped = {**good, "items": [{**good["items"][0], "audio": "../x.wav"}]}
    index.write_text(json.dumps(escaped))
    with pytest.raises(BadRequest, match="leaves the dataset"):
        Dataset.open(tmp_path / "d")


def _write_livelink(path, n, rate, degrees=False):
    header = ["Timecode", "BlendShapeCount",
              *(name[0].upper() + name[1:] for name in ARKIT_NAMES),
              "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(n):
            sec, fr = divmod(i, rate)
            tc = f"17:47:{29 + sec:02d}:{fr:02d}.250"  # LLF: frame.subframe
            weights = [0.0] * 52
            weights[ARKIT_NAMES.index("jawOpen")] = 0.5 + 0.5 * math.sin(i / 10)
            weights[ARKIT_NAMES.index("eyeBlinkLeft")] = 1.0 if i % 50 == 0 else 0.0
            yaw = 0.1 * math.sin(i / 20)
            if degrees:
                yaw = math.degrees(yaw) * 40  # large enough to be unmistakably degrees
            w.writerow([tc, 61, *weights, yaw, 0.02, -0.01, 0.0, 0.0, 0.0])


def test_import_livelink(tmp_path):
    rate, n = 60, 180  # 3 s captured at 60 fps
    _write_livelink(tmp_path / "take.csv", n, rate)
    sf.write(tmp_path / "take.wav", np.zeros(int(44100 * 3.5), np.float32), 44100)
    audio, exp, pose, fps = import_livelink(tmp_path / "take.csv", tmp_path / "take.wav")
    assert fps == 60.0 and audio.dtype == np.float32
    assert audio.size == 48000  # trimmed to the CSV's span (3 s)
    assert exp.shape == (180, 64) and pose.shape == (180, 6)
    jaw = CHANNEL_INDEX["jawOpen"]
    np.testing.assert_allclose(exp[:, jaw], 0.5 + 0.5 * np.sin(np.arange(180) / 10), atol=1e-5)
    assert exp[0, CHANNEL_INDEX["eyeBlinkLeft"]] == 1.0 and np.all(exp[:, 52:] == 0)
    np.testing.assert_allclose(pose[:, 1], 0.1 * np.sin(np.arange(180) / 20), atol=1e-5)
    assert np.allclose(pose[:, 0], 0.02) and np.all(pose[:, 3:] == 0)
    # Into a 25 fps dataset through the writer.
    with DatasetWriter(tmp_path / "d", fps=25.0) as w:
        w.add("take", audio, 16000, exp, pose, "talking", source="livelink", fps=fps)
    item = Dataset.open(tmp_path / "d")[0]
    assert item.n_frames == 75
    np.testing.assert_allclose(item.expression[:, jaw], 0.5 + 0.5 * np.sin(np.arange(75) * 60 / 25 / 10),
                               atol=2e-3)
    resampled = import_livelink(tmp_path / "take.csv", tmp_path / "take.wav", fps=25)[1]
    np.testing.assert_allclose(resampled, item.expression, atol=1e-6)


def test_import_livelink_degrees_and_errors(tmp_path):
    _write_livelink(tmp_path / "deg.csv", 90, 30, degrees=True)
    sf.write(tmp_path / "a.wav", np.zeros(16000 * 3, np.float32), 16000)
    _, _, pose, fps = import_livelink(tmp_path / "deg.csv", tmp_path / "a.wav")
    assert fps == 30.0
    np.testing.assert_allclose(pose[:, 1], 4.0 * np.sin(np.arange(90) / 20), atol=1e-4)
    (tmp_path / "bad.csv").write_text("Timecode,JawOpen\n00:00:00:00.000,0.1\n00:00:00:01.000,0.2\n")
    with pytest.raises(BadRequest, match="missing columns"):
        import_livelink(tmp_path / "bad.csv", tmp_path / "a.wav")
    (tmp_path / "noise.wav").write_bytes(b"not audio at all" * 100)
    with pytest.raises(BadAudio):
        import_livelink(tmp_path / "deg.csv", tmp_path / "noise.wav")
    with pytest.raises(BadRequest, match="unknown emotion"):
        import_livelink(tmp_path / "deg.csv", tmp_path / "a.wav", emotion="bored")


def test_resample_curves_holds_edges():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = resample_curves(x, 10.0, 20.0, 25)
    assert y[0, 0] == 0 and y[1, 0] == 0.5 and y[-1, 0] == 9


def test_face_runs_split_on_missing_faces():
    from flowvq.training.dataset import face_runs

    found = np.array([1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1], bool)
    assert face_runs(found, 3) == [(0, 3), (4, 9)]
    assert face_runs(found, 2) == [(0, 3), (4, 9), (11, 13)]
    assert face_runs(np.zeros(5, bool), 1) == []


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_dataset_build_from_a_real_video(tmp_path):
    """`flowvq dataset build`: a real talking-head video through the real tracker (a few frames)."""
    video = SHARED / "video_with_audio" / "theresa_may_5s.mp4"
    if not video.is_file():
        pytest.skip(f"real test data not present at {SHARED} (see docs/dataset.md)")
    import argparse

    from flowvq.training.corpus import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["dataset", "build", str(video), "-o", str(tmp_path / "d"),
                              "--max-frames", "8", "--min-seconds", "0.2", "--emotion", "sad"])
    assert args.func(args) == 0
    ds = Dataset.open(tmp_path / "d")
    assert len(ds) == 1 and ds.items[0]["source"] == "video:theresa_may_5s.mp4"
    item = ds[0]
    assert item.emotion == "sad" and item.n_frames == 8  # 8 frames at the video's 25 fps
    assert item.audio.size == 8 * 640 and np.abs(item.audio).max() > 1e-4  # the clip's sound, not zeros
    assert np.all(np.isfinite(item.expression)) and np.abs(item.pose[:, :3]).max() < 1.0
    with pytest.raises(BadRequest, match="video not found"):
        args = parser.parse_args(["dataset", "build", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "e")])
        args.func(args)
