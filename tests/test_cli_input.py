"""Bad input to the CLI ends in one readable line and exit status 2, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import FLOWVQ, bad_media


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([FLOWVQ, *args], capture_output=True, text=True, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2) / 16000
    speechish = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(
        np.float32)
    files = {}
    files["silent"] = d / "silent.wav"
    sf.write(files["silent"], np.zeros(32000, np.float32), 16000)
    files["short"] = d / "short.wav"
    sf.write(files["short"], speechish[:3200], 16000)
    files["empty"] = d / "empty.wav"
    files["empty"].write_bytes(b"")
    files["text"] = d / "notes.wav"
    files["text"].write_text("this is not audio\n" * 100)
    files["ok"] = d / "ok.wav"
    sf.write(files["ok"], speechish + 0.01 * rng.standard_normal(speechish.size), 16000)
    files["long"] = d / "two_hours.flac"
    with sf.SoundFile(files["long"], "w", samplerate=8000, channels=1, format="FLAC") as f:
        block = np.zeros(8000 * 600, np.int16)
        for _ in range(12):  # 12 x 10 min of (compressible) silence = 2 hours
            f.write(block)
    return files


@pytest.mark.parametrize("key, text", [
    ("silent", "silent"), ("short", "0.20 s long; at least 0.5 s"), ("empty", "empty"),
    ("text", "not an audio file"), ("long", "limit is 600 s"),
])
def test_generate_bad_audio(wavs, tmp_path, key, text):
    line = one_error_line(run("generate", str(wavs[key]), "-o", str(tmp_path)))
    assert text in line


def test_generate_missing_file(tmp_path):
    line = one_error_line(run("generate", str(tmp_path / "nope.wav"), "-o", str(tmp_path)))
    assert "not found" in line


@pytest.mark.parametrize("args, text", [
    (["--emotion", "bored"], "valid: neutral, angry, contempt"),
    (["--intensity", "7"], "'intensity' must be between 0 and 2"),
    (["--takes", "0"], "'takes' must be between 1 and 64"),
    (["--fps", "0.5"], "'fps' must be between 1 and 240"),
])
def test_generate_bad_settings(wavs, tmp_path, args, text):
    line = one_error_line(run("generate", str(wavs["ok"]), *args, "-o", str(tmp_path)))
    assert text in line


def test_help_lists_the_core_commands():
    proc = run("--help")
    assert proc.returncode == 0
    for cmd in ("serve", "generate", "train"):
        assert cmd in proc.stdout


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "flowvq", "--version"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("flowvq ")


@pytest.mark.parametrize("content", [b"not a checkpoint", b""])
def test_generate_with_a_bad_checkpoint(wavs, tmp_path, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    line = one_error_line(run("generate", str(wavs["ok"]), "--checkpoint", str(bad), "-q",
                              "-o", str(tmp_path)))
    assert "checkpoint" in line


def test_generate_records_what_made_each_take(wavs, tmp_path):
    from flowvq_shared.takes import Take

    out = tmp_path / "takes"
    proc = run("generate", str(wavs["ok"]), "--takes", "2", "--seed", "9", "--temperature", "0.5",
               "--no-blinks", "--phone-guidance", "0.4", "-q", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    takes = [Take.load(out / f"take_{k}.npz") for k in (1, 2)]
    assert [(t.settings.seed, t.index, t.settings.temperature, t.settings.blinks)
            for t in takes] == [(9, 1, 0.5, False), (9, 2, 0.5, False)]
    assert [t.settings.phone_guidance for t in takes] == [pytest.approx(0.4)] * 2
    assert all(t.expression[:, [0, 7]].max() < 0.5 for t in takes)  # eyeBlinkLeft/Right: no blink
    assert all(len(t.audio_sha256) == 64 for t in takes)


# ---------------------------------------------------------------- every bad input, one line

@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, Path]:
    return bad_media(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def a_take(wavs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("take")
    proc = run("generate", str(wavs["ok"]), "-q", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out / "take_1.npz"


IMAGE_CASES = [
    ("bomb.png", "900 Mpx; the limit is 100 Mpx"),
    ("truncated.png", "truncated"),
    ("truncated.jpg", "truncated"),
    ("corrupt.png", "not an image flowvq can read"),
    ("empty.png", "is empty"),
    ("folder.png", "is a folder"),
    ("fifo.png", "not a regular file"),
    ("missing.png", "not found"),
]


@pytest.mark.parametrize("key, text", IMAGE_CASES)
def test_track_refuses_bad_images(bad, tmp_path, key, text):
    line = one_error_line(run("track", str(bad[key]), "-o", str(tmp_path / "t.npz"), timeout=60))
    assert text in line


@pytest.mark.parametrize("key, text", IMAGE_CASES[:4])
def test_generate_refuses_a_bad_reference_image(bad, wavs, tmp_path, key, text):
    line = one_error_line(run("generate", str(wavs["ok"]), "--reference", str(bad[key]), "-q",
                              "-o", str(tmp_path)))
    assert text in line


@pytest.mark.parametrize("key, text", IMAGE_CASES[:2] + IMAGE_CASES[5:6])
def test_render_refuses_a_bad_portrait(bad, a_take, tmp_path, key, text):
    line = one_error_line(run("render", "--portrait", str(bad[key]), "--take", str(a_take),
                              "-o", str(tmp_path / "plates")))
    assert text in line


@pytest.mark.parametrize("key, text", [
    ("truncated.mp4", "is it truncated or corrupt"),
    ("corrupt.mp4", "not a video flowvq can read"),
    ("folder.mp4", "is a folder"),
    ("long.mp4", "700 s long; the limit is 600 s"),
])
def test_track_refuses_bad_videos(bad, tmp_path, key, text):
    line = one_error_line(run("track", str(bad[key]), "-o", str(tmp_path / "t.npz"), timeout=60))
    assert text in line


@pytest.mark.parametrize("key, text", [
    ("truncated.mp4", "not an audio file flowvq can read"),
    ("silent_video.mp4", "has no audio track"),
    ("20ch.wav", "at most 16 channels"),
    ("1khz.wav", "sample rate 1000 Hz is not supported"),
    ("folder.wav", "is a folder"),
    ("fifo.wav", "not a regular file"),
])
def test_generate_refuses_bad_audio_files(bad, tmp_path, key, text):
    line = one_error_line(run("generate", str(bad[key]), "-q", "-o", str(tmp_path)))
    assert text in line


@pytest.mark.parametrize("content, text", [
    (None, "not a FlowVQ take file"),          # a real take cut in half
    (b"not a take\n", "not a FlowVQ take file"),
    ("folder", "is a folder"),
])
def test_render_refuses_bad_take_files(a_take, wavs, tmp_path, content, text):
    path = tmp_path / "take_9.npz"
    if content is None:
        data = a_take.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content == "folder":
        path.mkdir()
    else:
        path.write_bytes(content)
    portrait = tmp_path / "p.png"
    import cv2

    cv2.imwrite(str(portrait), np.full((64, 64, 3), 128, np.uint8))
    line = one_error_line(run("render", "--portrait", str(portrait), "--take", str(path),
                              "-o", str(tmp_path / "plates")))
    assert text in line


@pytest.mark.parametrize("fps", ["nan", "-1", "0", "inf", "1e9"])
def test_generate_refuses_frame_rates_that_are_not_positive_and_finite(wavs, tmp_path, fps):
    line = one_error_line(run("generate", str(wavs["ok"]), f"--fps={fps}", "-o", str(tmp_path)))
    assert "'fps' must be between 1 and 240" in line


def test_generate_accepts_an_odd_frame_rate(wavs, tmp_path):
    from flowvq_shared.takes import Take

    proc = run("generate", str(wavs["ok"]), "--fps", "22.13", "-q", "-o", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    take = Take.load(tmp_path / "take_1.npz")
    assert take.fps == pytest.approx(22.13) and take.n_frames == 45  # ceil(2.0 s x 22.13)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_files_are_refused(wavs, tmp_path):
    locked = tmp_path / "locked.wav"
    locked.write_bytes(wavs["ok"].read_bytes())
    locked.chmod(0)
    line = one_error_line(run("generate", str(locked), "-o", str(tmp_path)))
    assert "permission denied" in line


# ---------------------------------------------------------------- Live Link Face from the CLI

def test_convert_round_trips_a_take_through_live_link_face(a_take, tmp_path):
    from flowvq_shared.channels import ARKIT_NAMES, POSE_NAMES
    from flowvq_shared.takes import Take

    csv_path = tmp_path / "take_1_livelink.csv"
    proc = run("convert", str(a_take), str(csv_path), timeout=60)
    assert proc.returncode == 0, proc.stderr
    header = csv_path.read_text().splitlines()[0].split(",")
    assert header[:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"] and len(header) == 63
    proc = run("convert", str(csv_path), str(tmp_path / "back" / "take_2.npz"), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "back" / "take_2.csv").is_file()  # FlowVQ's own CSV beside it
    a, b = Take.load(a_take), Take.load(tmp_path / "back" / "take_2.npz")
    assert b.fps == pytest.approx(a.fps) and b.n_frames == a.n_frames and b.index == 2
    arkit = [a.names.index(n) for n in ARKIT_NAMES]
    np.testing.assert_allclose(b.expression[:, arkit], a.expression[:, arkit], atol=2e-6)
    rot = [POSE_NAMES.index(n) for n in ("pitch", "yaw", "roll")]
    np.testing.assert_allclose(b.pose[:, rot], a.pose[:, rot], atol=2e-6)
    assert b.source.startswith("livelink:")


@pytest.mark.parametrize("args, text", [
    (["{take}", "{tmp}/x.txt"], "name the output *.csv"),
    (["{bad_csv}", "{tmp}/out"], "not a Live Link Face CSV"),
    (["{bad_csv}", "{tmp}/out/foo.npz"], "take_K.npz"),
    (["{tmp}/missing.csv", "{tmp}/out"], "not found"),
])
def test_convert_refuses_bad_input_in_one_line(a_take, tmp_path, args, text):
    bad_csv = tmp_path / "junk.csv"
    bad_csv.write_text("a,b\n1,2\n")
    fill = {"take": str(a_take), "tmp": str(tmp_path), "bad_csv": str(bad_csv)}
    line = one_error_line(run("convert", *(a.format(**fill) for a in args), timeout=60))
    assert text in line


def test_generate_output_that_is_a_file_is_one_line(tmp_path, speech_wav):
    import subprocess
    import sys
    from pathlib import Path

    blocker = tmp_path / "takes"
    blocker.write_text("a file where the output folder should go\n")
    r = subprocess.run([str(Path(sys.executable).with_name("flowvq")), "generate", str(speech_wav), "-o",
                        str(blocker), "-q", "--phone-guidance", "0"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and "is a file" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
