"""`flowvq dub` on real footage (short cuts of ../shared/data/video_with_audio): every frame of the shot
at its resolution, the upper face untouched, the mouth following the new line, odd frame rates, the
mp4's sound, and one clear line for each refusal (no face, two faces, a line too long, no sound)."""
from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import FLOWVQ, shared_data

pytestmark = pytest.mark.timeout(900)


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def cut(src, dst, start=0.0, seconds=2.0, extra=()):
    subprocess.run([ffmpeg(), "-nostdin", "-v", "error", "-y", "-ss", str(start), "-i", str(src), "-t", str(seconds),
                    *extra, "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", "-c:a", "aac", str(dst)], check=True)
    return Path(dst)


def frames(path) -> list[np.ndarray]:
    from flowvq.tracker.follow import Shot

    return list(Shot.open(path).frames_rgb())


def read(out: Path, n: int) -> list[np.ndarray]:
    from flowvq.render.writers import frame_name, read_frame

    return [read_frame(out / frame_name(i, "png")) for i in range(n)]


def save_curves(path, expression, fps):
    np.savez(path, expression=np.asarray(expression, np.float32), fps=np.float64(fps))
    return path


def run_cli(*args, timeout=600):
    return subprocess.run([FLOWVQ, "dub", *map(str, args), "-q"], capture_output=True, text=True, timeout=timeout)


def wav(path, seconds, amplitude=0.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    x = amplitude * np.sin(2 * np.pi * 220 * t)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def obama(tmp_path_factory):
    d = tmp_path_factory.mktemp("dub")
    return cut(shared_data("video_with_audio", "obama_weekly_address_20s.mp4"), d / "obama3.mp4", 4.0, 3.0)


def test_a_closed_mouth_line_closes_the_mouth_and_keeps_the_rest_of_the_shot(obama, tmp_path):
    """A 1.2 s closed-mouth take on a 3 s shot: the line's frames close the mouth, the upper face is the
    shot's own pixels, and after the line (and its 0.2 s fade) the frames are exactly as filmed."""
    from flowvq.dub import dub_shot
    from flowvq.evaluate.faces import measure_face
    from flowvq.tracker.follow import Shot

    shot = Shot.open(obama)
    curves = save_curves(tmp_path / "closed.npz", np.zeros((30, 64)), 25.0)
    m = dub_shot(obama, tmp_path / "out", take=curves, log=lambda *_: None)
    real, dub = frames(obama), read(tmp_path / "out", shot.frames)
    assert m["frames"] == shot.frames == len(real) == 75 and (m["width"], m["height"]) == (450, 450)
    assert all(d.shape == r.shape for d, r in zip(dub, real))
    assert m["line_frames"] == 30 and m["dubbed_frames"] == 30 + 5  # the fade: 0.2 s at 25 fps
    for i in range(35, 75):
        assert np.array_equal(dub[i], real[i]), f"frame {i} after the line is not as filmed"
    gaps_real, gaps_dub = [], []
    for i in range(0, 30, 3):
        fr = measure_face(real[i], embed=False)
        lm = fr.landmarks
        top = int(lm[[31, 33, 35], 1].min() - 0.04 * np.linalg.norm(lm[15] - lm[1]))  # above the nose base: the shot's
        assert np.array_equal(dub[i][:top], real[i][:top]), f"frame {i}: the upper face changed"
        gaps_real.append(fr.lip_gap)
        gaps_dub.append(measure_face(dub[i], embed=False).lip_gap)
    assert np.mean(gaps_real) > 0.05  # he speaks in this stretch
    assert np.mean(gaps_dub) < 0.5 * np.mean(gaps_real), (gaps_dub, gaps_real)
    sidecar = json.loads((tmp_path / "out" / "dub.json").read_text())
    assert sidecar["complete"] and sidecar["bank"]["frames"] > 50 and len(sidecar["bank_frame"]) == 75


def test_own_curves_give_back_the_shots_mouth(obama, tmp_path):
    """Dubbing a shot with its own tracked curves (and a bank from its own frames) follows its mouth."""
    from flowvq.dub import dub_shot
    from flowvq.dub.measure import compare

    track = tmp_path / "track.npz"
    subprocess.run([FLOWVQ, "track", str(obama), "-o", str(track)], check=True, capture_output=True, timeout=600)
    m = dub_shot(obama, tmp_path / "out", take=track, log=lambda *_: None)
    res = compare(frames(obama), read(tmp_path / "out", m["frames"]))
    assert res["lip_r"] >= 0.8 and res["ssim_upper"] >= 0.99 and res["identity_max"] <= 0.4, res
    assert res["sharpness_ratio"] >= 0.7, res


@pytest.mark.parametrize("rate", ["22.13", "24000/1001"])
def test_odd_frame_rates_keep_every_frame_and_the_mp4_carries_the_new_sound(obama, tmp_path, rate):
    shot = cut(obama, tmp_path / "odd.mp4", 0.0, 2.0, extra=("-vf", f"fps={rate}"))
    line = wav(tmp_path / "line.wav", 1.5, amplitude=0.3)
    p = run_cli(shot, "--audio", line, "--mp4", "-o", tmp_path / "out")
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "out" / "dub.json").read_text())
    n = len(frames(shot))
    assert m["frames"] == n and abs(m["fps"] - eval(rate)) < 1e-3
    assert len(list((tmp_path / "out").glob("frame_*.png"))) == n
    info = subprocess.run([ffmpeg(), "-hide_banner", "-i", str(tmp_path / "out" / "dub.mp4")],
                          capture_output=True, text=True).stderr
    assert ": Audio:" in info and ": Video:" in info
    assert len(frames(tmp_path / "out" / "dub.mp4")) == n


def test_a_wide_vertical_shot_is_dubbed_at_its_full_resolution(tmp_path):
    src = shared_data("video_with_audio", "latentsync_demo1_video_woman_outdoor_10s.mp4")
    shot = cut(src, tmp_path / "wide.mp4", 2.0, 1.0)
    curves = save_curves(tmp_path / "open.npz", np.tile(np.eye(64)[17] * 0.6, (25, 1)), 25.0)  # jawOpen
    p = run_cli(shot, "--take", curves, "-o", tmp_path / "out")
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "out" / "dub.json").read_text())
    assert (m["width"], m["height"]) == (1080, 1920) and m["frames"] == len(frames(shot))
    assert m["dubbed_frames"] >= 20


def _refused(p) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def test_refusals_each_in_one_line(obama, tmp_path):
    # a line longer than the shot: both lengths named
    long = wav(tmp_path / "long.wav", 4.5, amplitude=0.3)
    line = _refused(run_cli(obama, "--audio", long, "-o", tmp_path / "a"))
    assert "4.50 s" in line and "3.00 s" in line
    # no sound: a silent line cannot drive a mouth
    silent = wav(tmp_path / "silent.wav", 1.0)
    assert "silent" in _refused(run_cli(obama, "--audio", silent, "-o", tmp_path / "b"))
    # no face: a test pattern
    noface = tmp_path / "noface.mp4"
    subprocess.run([ffmpeg(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                    "-t", "1", "-pix_fmt", "yuv420p", str(noface)], check=True)
    curves = save_curves(tmp_path / "c.npz", np.zeros((10, 64)), 25.0)
    assert "no face" in _refused(run_cli(noface, "--take", curves, "-o", tmp_path / "c"))
    # two faces: the shot beside itself
    two = tmp_path / "two.mp4"
    subprocess.run([ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", str(obama), "-i", str(obama), "-t", "1",
                    "-filter_complex", "hstack", "-pix_fmt", "yuv420p", str(two)], check=True)
    assert "two or more faces" in _refused(run_cli(two, "--take", curves, "-o", tmp_path / "d"))
    # a still image is not a shot; an output that is a file is refused before any work
    still = tmp_path / "still.png"
    import imageio.v2 as imageio

    imageio.imwrite(still, frames(obama)[0])
    assert "still image" in _refused(run_cli(still, "--take", curves, "-o", tmp_path / "e"))
    (tmp_path / "afile").write_text("mine")
    assert "is a file" in _refused(run_cli(obama, "--take", curves, "-o", tmp_path / "afile"))
    assert (tmp_path / "afile").read_text() == "mine"
    # nothing was written for a refused line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_shot_dubbed_again_reads_its_track_from_the_cache(obama, tmp_path, monkeypatch):
    """Another line on the same shot skips finding and fitting the face (the slow part) and dubs the same."""
    from flowvq.dub import dub_shot
    from flowvq.tracker.follow import Shot

    monkeypatch.setenv("FLOWVQ_CACHE", str(tmp_path / "cache"))
    shot = Shot.open(obama)
    curves = save_curves(tmp_path / "line.npz", np.zeros((shot.frames, 64)), shot.fps)
    first, again = [], []
    m = dub_shot(obama, tmp_path / "a", take=curves, log=first.append)
    dub_shot(obama, tmp_path / "b", take=curves, log=again.append)
    assert not any("cache" in line for line in first) and any("read from the cache" in line for line in again)
    assert len(list((tmp_path / "cache" / "dub").glob("*.npz"))) == 2  # landmarks + fit, nothing half-written
    for x, y in zip(read(tmp_path / "a", m["frames"]), read(tmp_path / "b", m["frames"])):
        assert np.array_equal(x, y)


def test_a_long_hd_shot_is_not_refused_for_memory_it_never_holds():
    """A minute of 1080x1920 is 8.7 GiB decoded: too much for `flowvq track`, which holds a clip's frames, but
    a shot to dub and an actor's footage are read one frame at a time (Shot.open probes with held=False)."""
    from flowvq.errors import TooLarge
    from flowvq.video import parse_probe

    header = ("  Duration: 00:01:00.07, start: 0.000000, bitrate: 988 kb/s\n"
              "  Stream #0:0[0x1](und): Video: hevc (Main), yuv420p(tv, bt709, progressive), 1080x1920 [SAR 1:1 DAR 9:16], "
              "851 kb/s, 24.98 fps, 25 tbr, 12800 tbn (default)\n"
              "  Stream #0:1[0x2](und): Audio: aac (LC), 44100 Hz, stereo, fltp, 130 kb/s (default)\n")
    with pytest.raises(TooLarge, match="need 8.7 GiB decoded; the limit is 8 GiB"):
        parse_probe(header, "wide60.mp4")
    info = parse_probe(header, "wide60.mp4", held=False)
    assert (info.width, info.height, info.frames, info.has_audio) == (1080, 1920, 1501, True)
    with pytest.raises(TooLarge, match="limit is 600 s"):  # the length limit stays for every reader
        parse_probe(header.replace("00:01:00.07", "00:11:00.00"), "long.mp4", held=False)
