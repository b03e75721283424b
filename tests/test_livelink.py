"""shared/livelink.py: Live Link Face CSV written and read back; malformed files refused in one line."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from flowvq_shared import livelink
from flowvq_shared.channels import ARKIT_NAMES, CHANNEL_INDEX, EXTRA_NAMES, POSE_NAMES
from flowvq_shared.protocol import BAD_REQUEST, ProtocolError
from flowvq_shared.settings import GenerateSettings
from flowvq_shared.takes import Take


def _take(n=60, fps=25.0, seed=0):
    rng = np.random.default_rng(seed)
    exp = rng.uniform(0, 1, (n, 64)).astype(np.float32)
    pose = rng.uniform(-0.3, 0.3, (n, 6)).astype(np.float32)
    return Take(expression=exp, pose=pose, settings=GenerateSettings(fps=fps, emotion="happy"),
                index=3, audio_sha256="ab" * 32)


def test_header_is_the_apps():
    h = livelink.HEADER
    assert h[:4] == ("Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft")
    assert h[2:54] == tuple(n[0].upper() + n[1:] for n in ARKIT_NAMES)
    assert h[54:] == ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch",
                      "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
    assert livelink.BLENDSHAPE_COUNT == 61 and len(h) == 63


@pytest.mark.parametrize("fps", [25.0, 24.0, 30.0, 60.0, 23.976, 29.97])
def test_round_trip(tmp_path, fps):
    take = _take(n=int(fps * 2.5), fps=fps)
    path = livelink.write_csv(take, tmp_path / "take.csv")
    with open(path, newline="") as f:
        table = list(csv.reader(f))
    assert tuple(table[0]) == livelink.HEADER
    assert len(table) == 1 + take.n_frames
    assert table[1][0] == "00:00:00:00.000" and table[1][1] == "61"
    back = livelink.read_csv(path)
    assert back.fps == pytest.approx(fps)
    assert back.source == "livelink:take.csv"
    assert back.n_frames == take.n_frames
    arkit = [CHANNEL_INDEX[n] for n in ARKIT_NAMES]
    np.testing.assert_allclose(back.expression[:, arkit], take.expression[:, arkit], atol=1e-6)
    extras = [CHANNEL_INDEX[n] for n in EXTRA_NAMES]
    assert not back.expression[:, extras].any()  # not exported, read as zero
    rot = [POSE_NAMES.index(n) for n in ("pitch", "yaw", "roll")]
    np.testing.assert_allclose(back.pose[:, rot], take.pose[:, rot], atol=1e-6)
    assert not back.pose[:, 3:].any()  # translation not exported


def test_head_columns_from_pose(tmp_path):
    take = _take(n=5)
    header, rows = livelink.rows(take)
    yaw, pitch, roll = (header.index(c) for c in ("HeadYaw", "HeadPitch", "HeadRoll"))
    assert float(rows[2][yaw]) == pytest.approx(take.pose[2, POSE_NAMES.index("yaw")], abs=1e-6)
    assert float(rows[2][pitch]) == pytest.approx(take.pose[2, POSE_NAMES.index("pitch")], abs=1e-6)
    assert float(rows[2][roll]) == pytest.approx(take.pose[2, POSE_NAMES.index("roll")], abs=1e-6)


def test_timecodes():
    assert livelink.timecode(0, 25) == "00:00:00:00.000"
    assert livelink.timecode(24, 25) == "00:00:00:24.000"
    assert livelink.timecode(25, 25) == "00:00:01:00.000"
    assert livelink.timecode(25 * 3661 + 7, 25) == "01:01:01:07.000"
    assert livelink.parse_timecode("01:01:01:07.500") == (3661, 7.5)


def test_resampled_write(tmp_path):
    take = _take(n=50, fps=25.0)
    back = livelink.read_csv(livelink.write_csv(take, tmp_path / "t.csv", fps=50.0))
    assert back.fps == 50.0 and back.n_frames == 99
    j = CHANNEL_INDEX["jawOpen"]
    np.testing.assert_allclose(back.expression[::2, j], take.expression[:, j], atol=1e-6)


def test_short_file_uses_default_or_given_rate(tmp_path):
    path = livelink.write_csv(_take(n=10, fps=25.0), tmp_path / "short.csv")
    assert livelink.read_csv(path).fps == livelink.DEFAULT_FPS
    assert livelink.read_csv(path, fps=25.0).fps == 25.0


def test_real_capture_shape_reads(tmp_path):
    """Columns found by name: reordered columns, a start timecode that is not zero, 60 fps."""
    header = list(livelink.HEADER)
    rows = []
    for t in range(130):
        s, f = divmod(t, 60)
        vals = [f"{0.01 * (t % 7):.4f}"] * 52 + ["0.1", "-0.2", "0.05"] + ["0"] * 6
        rows.append([f"10:20:{30 + s:02d}:{f:02d}.250", "61", *vals])
    order = [0, 1, *range(54, 63), *range(2, 54)]
    path = tmp_path / "MySlate_3_iPhone.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([header[i] for i in order])
        for r in rows:
            w.writerow([r[i] for i in order])
    take = livelink.read_csv(path)
    assert take.fps == 60.0 and take.n_frames == 130
    assert take.pose[0, POSE_NAMES.index("yaw")] == pytest.approx(0.1)
    assert take.pose[0, POSE_NAMES.index("pitch")] == pytest.approx(-0.2)
    assert take.expression[3, CHANNEL_INDEX["jawOpen"]] == pytest.approx(0.03)


def _write(tmp_path, text, name="bad.csv"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


GOOD_HEADER = ",".join(livelink.HEADER)
GOOD_ROW = "00:00:00:00.000,61," + ",".join(["0.5"] * 61)


@pytest.mark.parametrize("text,needle", [
    ("", "empty"),
    ("\n\n", "empty"),
    (GOOD_HEADER + "\n", "no frames"),
    ("frame,time,jawOpen\n0,0,0.1\n", "no Timecode"),
    ("Timecode,BlendShapeCount,EyeBlinkLeft\n00:00:00:00.000,1,0.1\n", "header lacks"),
    (GOOD_HEADER + "\n00:00:00:00.000,61,0.5\n", "line 2 has 3 fields"),
    (GOOD_HEADER + "\n" + GOOD_ROW + "\n" + GOOD_ROW.replace("00:00:00:00.000", "yesterday") + "\n",
     "line 3"),
    (GOOD_HEADER + "\n" + GOOD_ROW.replace("0.5", "abc", 1) + "\n", "not a number"),
    (GOOD_HEADER + "\n" + GOOD_ROW.replace("0.5", "nan", 1) + "\n", "not finite"),
    (GOOD_HEADER + "\n00:00:02:00.000,61," + ",".join(["0"] * 61) + "\n" + GOOD_ROW + "\n",
     "backwards"),
    (b"\xff\xfe\x00\x01garbage", "not a text file"),
])
def test_malformed_files(tmp_path, text, needle):
    with pytest.raises(ProtocolError) as e:
        livelink.read_csv(_write(tmp_path, text))
    assert e.value.code == BAD_REQUEST
    assert needle in e.value.message, e.value.message
    assert "\n" not in e.value.message and e.value.message.startswith("bad.csv")


def test_missing_file(tmp_path):
    with pytest.raises(ProtocolError) as e:
        livelink.read_csv(tmp_path / "nope.csv")
    assert e.value.code == BAD_REQUEST and "not found" in e.value.message


def test_write_is_atomic_and_checks_fps(tmp_path):
    take = _take(n=5)
    with pytest.raises(ProtocolError):
        livelink.write_csv(take, tmp_path / "x.csv", fps=0.0)
    assert list(tmp_path.iterdir()) == []
    livelink.write_csv(take, tmp_path / "x.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]
