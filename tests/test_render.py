"""Plate renderer pieces: rasteriser, frame files, the geometry path on a real photo, write_plates."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from flowvq_shared.protocol import ProtocolError
import torch

from flowvq.errors import BadImage, Cancelled
from flowvq.render.raster import interpolate, rasterize
from flowvq_shared.channels import CHANNEL_INDEX


def test_rasterizer_covers_the_front_of_a_sphere():
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    v = torch.tensor(m.vertices, dtype=torch.float32)
    f = torch.tensor(m.faces)
    size = 128
    xy = torch.stack([(v[:, 0] * 0.4 + 0.5) * size, (0.5 - v[:, 1] * 0.4) * size], 1)
    frags = rasterize(xy, -v[:, 2], f, size, size)  # camera on +z: nearer = larger z
    cover = frags.mask.float().mean().item()
    assert abs(cover - np.pi * 0.4 ** 2) < 0.01
    pos = interpolate(v, f, frags)
    assert pos[frags.mask][:, 2].min() > -1e-3  # only the front half is visible
    # a linear attribute (x) interpolates to the pixel's own x
    ys, xs = frags.mask.nonzero(as_tuple=True)
    x_from_pixel = (xs.float() / size - 0.5) / 0.4
    assert torch.allclose(pos[ys, xs, 0], x_from_pixel, atol=0.02)


def test_rasterizer_empty_and_offscreen():
    xy = torch.tensor([[-50.0, -50.0], [-40.0, -50.0], [-45.0, -40.0]])
    frags = rasterize(xy, torch.zeros(3), torch.tensor([[0, 1, 2]]), 16, 16)
    assert not frags.mask.any()


@pytest.mark.parametrize("fmt", ["png", "png16", "exr"])
def test_frame_files_round_trip(tmp_path, fmt):
    from flowvq.render import writers

    rgb = np.random.default_rng(0).integers(0, 256, (21, 33, 3), dtype=np.uint8)
    path = writers.write_frame(tmp_path, 0, rgb, fmt)
    assert path.name == "frame_00001" + (".exr" if fmt == "exr" else ".png")
    back = writers.read_frame(path)
    tol = 1 if fmt == "exr" else 0  # half floats of linear light: within one 8-bit step
    assert back.shape == rgb.shape and np.abs(back.astype(int) - rgb).max() <= tol
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


@pytest.fixture(scope="module")
def portrait():
    from skimage import data

    return np.ascontiguousarray(data.astronaut())  # a real photo that ships with scikit-image


@pytest.fixture(scope="module")
def renderer(portrait):
    from flowvq.render import PlateRenderer

    return PlateRenderer(portrait)


def _take(n=10, jaw=0.6):
    from flowvq_shared.settings import GenerateSettings
    from flowvq_shared.takes import Take

    t = np.arange(n) / 25.0
    exp = np.zeros((n, 64), np.float32)
    exp[:, CHANNEL_INDEX["jawOpen"]] = jaw * np.sin(np.pi * np.arange(n) / max(n - 1, 1))
    pose = np.zeros((n, 6), np.float32)
    pose[:, 1] = 0.05 * np.sin(2 * np.pi * t)
    return Take(expression=exp, pose=pose, settings=GenerateSettings(fps=25.0, emotion="happy", seed=7))


def test_zero_take_renders_the_portrait(renderer, portrait):
    frame = renderer.frame(np.zeros(64, np.float32), np.zeros(6, np.float32))
    assert frame.shape == portrait.shape and frame.dtype == np.uint8
    assert np.abs(frame.astype(int) - portrait).mean() < 0.5


def test_jaw_opens_the_mouth_and_leaves_the_rest(renderer, portrait):
    from flowvq.evaluate.faces import measure_face

    exp = np.zeros(64, np.float32)
    exp[CHANNEL_INDEX["jawOpen"]] = 0.7
    frame = renderer.frame(exp, np.zeros(6, np.float32))
    before, after = measure_face(portrait, embed=False), measure_face(frame, embed=False)
    assert after.found and after.lip_gap > before.lip_gap + 0.05
    diff = np.abs(frame.astype(int) - portrait).sum(2)
    ys, xs = np.nonzero(diff > 8)
    lm = renderer.fit.landmarks
    # changes stay around the lower face: nothing moves far from the face
    assert ys.min() > lm[:, 1].min() - 0.5 * np.ptp(lm[:, 1]) and xs.max() < lm[:, 0].max() + np.ptp(lm[:, 0])
    assert (diff[: int(lm[:, 1].min()) - 60] == 0).mean() > 0.95  # the image's top is untouched


def test_render_progress_cancel_and_bad_input(renderer):
    take = _take(6)
    seen = []
    frames = list(renderer.render(take.expression, take.pose, progress=lambda i, n: seen.append((i, n))))
    assert [i for i, _ in frames] == list(range(6)) and seen[-1] == (6, 6)
    cancel = threading.Event()
    gen = renderer.render(take.expression, take.pose, cancel=cancel)
    next(gen)
    cancel.set()
    with pytest.raises(Cancelled):
        next(gen)
    with pytest.raises(ProtocolError, match=r"\(T, 64\)"):
        list(renderer.render(np.zeros((3, 10)), np.zeros((3, 6))))


def test_bad_portrait():
    from flowvq.errors import NoFace
    from flowvq.render import PlateRenderer

    with pytest.raises(NoFace):
        PlateRenderer(np.full((128, 128, 3), 90, np.uint8))
    with pytest.raises(BadImage):
        PlateRenderer(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(BadImage):
        PlateRenderer(np.zeros((64, 64), np.float32))


def test_write_plates_sidecar_resume_and_mp4(tmp_path, renderer, portrait):
    import imageio_ffmpeg
    import soundfile as sf

    from flowvq.render import write_plates

    take = _take(8)
    take_path = take.save(tmp_path / "takes", 1)
    wav = tmp_path / "a.wav"
    sf.write(wav, 0.1 * np.sin(2 * np.pi * 220 * np.arange(16000 * 8 // 25) / 16000), 16000)
    out = tmp_path / "plates"
    man = write_plates(take_path, portrait, out, mp4=True, audio_path=wav, fit=renderer.fit)
    names = sorted(p.name for p in out.glob("frame_*.png"))
    assert names == [f"frame_{i:05d}.png" for i in range(1, 9)]
    side = json.loads((out / "plates.json").read_text())
    assert side["complete"] and side["fps"] == 25.0 and side["take"]["seed"] == 7
    assert side["take"]["file"] == str(take_path) and side["width"] == portrait.shape[1]
    assert len(side["portrait_sha256"]) == 64 and side["versions"]["renderer"]
    assert man["mp4"] and (out / "plates.mp4").is_file()
    n_frames, secs = imageio_ffmpeg.count_frames_and_secs(str(out / "plates.mp4"))
    assert n_frames == 8
    import subprocess

    info = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(out / "plates.mp4")],
                          capture_output=True, text=True).stderr
    assert "Audio: aac" in info and "Video: h264" in info  # the audio is muxed

    # resume: a killed render left frames 1-5; only the rest are rendered
    for p in sorted(out.glob("frame_*.png"))[5:]:
        p.unlink()
    man2 = write_plates(take, portrait, out, resume=True, fit=renderer.fit)
    assert man2["rendered"] == 3 and len(list(out.glob("frame_*.png"))) == 8


def test_refine_without_checkpoint_renders_geometry(tmp_path, portrait, renderer):
    from flowvq.render import PlateRenderer

    r = PlateRenderer(portrait, refine=tmp_path / "missing.pt", fit=renderer.fit)
    assert r.refiner is None and "no VQIG checkpoint" in r.notes[0]
    assert r.versions["vqig"] is None


def test_refine_with_a_tiny_checkpoint(tmp_path, portrait, renderer):
    from flowvq.render import PlateRenderer
    from flowvq.vqig import GeneratorConfig, VQIGGenerator, save_generator

    torch.manual_seed(0)
    path = save_generator(tmp_path / "g.pt", VQIGGenerator(GeneratorConfig.tiny()))
    r = PlateRenderer(portrait, refine=path, fit=renderer.fit)
    take = _take(3)
    frames = [f for _, f in r.render(take.expression, take.pose)]
    geo = renderer.frame(take.expression[1], take.pose[1])
    assert frames[1].shape == portrait.shape
    assert np.abs(frames[1].astype(int) - geo).mean() > 0.1  # the refiner really ran
    assert r.versions["vqig"] == str(path)


def test_same_fit_every_frame_no_flicker(renderer):
    """One fit serves every frame: a frame is a pure function of its curves, and a smooth take
    gives smoothly changing frames."""
    take = _take(6, jaw=0.3)
    a = [f for _, f in renderer.render(take.expression, take.pose)]
    b = renderer.frame(take.expression[3], take.pose[3])
    assert np.array_equal(a[3], b)
    steps = [np.abs(a[i + 1].astype(int) - a[i]).mean() for i in range(5)]
    assert max(steps) < 3.0


def test_cli_modules_load_without_heavy_imports():
    import subprocess
    import sys

    code = ("import sys, flowvq.render.cli, flowvq.training.vqig_cli; "
            "print(','.join(m for m in ('torch', 'cv2', 'dlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
