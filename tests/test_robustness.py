"""Faults against a real server: clients that leave mid-job, cancels, concurrent renders, odd images."""
from __future__ import annotations

import socket
import struct
import threading
import time

import cv2
import numpy as np
import pytest

from flowvq_shared.channels import CHANNEL_INDEX

from conftest import bad_media
from wire import Client, require, wav_bytes


def curves(n: int = 6):
    exp = np.zeros((n, 64), np.float32)
    exp[:, CHANNEL_INDEX["jawOpen"]] = np.linspace(0, 0.8, n)
    return exp, np.zeros((n, 6), np.float32)


def test_client_leaving_mid_generate_does_not_stop_the_next(backend, speech_wav):
    audio = speech_wav.read_bytes()
    with Client(backend.host, backend.port) as c:
        require(c, "generate")
        c.send({"type": "generate", "id": 1, "audio": audio, "takes": 8})
    with Client(backend.host, backend.port) as c:  # the first client is gone mid-job
        reply, _ = c.request({"type": "generate", "id": 2, "audio": audio, "takes": 1,
                              "seed": 3})
        assert reply["type"] == "result", reply
        take = reply["takes"][0]
        assert take["expression"].shape[1] == 64 and np.isfinite(take["expression"]).all()
    assert backend.alive()


def test_cancel_mid_generate(backend, speech_wav):
    with Client(backend.host, backend.port) as c:
        require(c, "generate")
        c.send({"type": "generate", "id": "long", "audio": speech_wav.read_bytes(), "takes": 64})
        while (msg := c.recv())["type"] != "progress":  # the job is running
            assert msg["type"] != "result", "finished before it could be cancelled"
        t0 = time.time()
        c.send({"type": "cancel", "id": "long"})
        while (reply := c.recv())["type"] == "progress":
            pass
        assert reply["type"] == "error" and reply["code"] == "cancelled", reply
        assert time.time() - t0 < 10  # one sampling step of 64 takes, on 2 loaded cores
        reply, _ = c.request({"type": "generate", "id": "next", "audio": speech_wav.read_bytes()})
        assert reply["type"] == "result" and len(reply["takes"]) == 1


def test_two_clients_render_at_once_outputs_not_mixed(backend, portrait_png):
    results: dict[str, object] = {}
    data = portrait_png.read_bytes()

    def render(tag: str, jaw: float):
        try:
            with Client(backend.host, backend.port) as c:
                require_ok = "render" in c.hello["capabilities"]
                if not require_ok:
                    results[tag] = "skip"
                    return
                exp, pose = curves(4)
                exp[:, CHANNEL_INDEX["jawOpen"]] = jaw
                reply, stream = c.request({"type": "render", "id": tag, "portrait": data,
                                           "expression": exp, "pose": pose, "max_side": 192})
                frames = [m for m in stream if m["type"] == "frame"]
                results[tag] = (reply, frames)
        except Exception as e:  # noqa: BLE001
            results[tag] = e

    threads = [threading.Thread(target=render, args=(t, j)) for t, j in (("a", 0.0), ("b", 0.9))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    if results.get("a") == "skip":
        pytest.skip("render is not built yet")
    for tag in ("a", "b"):
        assert not isinstance(results[tag], Exception), results[tag]
        reply, frames = results[tag]
        assert reply["type"] == "result", reply
        assert [f["index"] for f in frames] == list(range(4))
        assert all(f["id"] == tag for f in frames)
    a = cv2.imdecode(np.frombuffer(results["a"][1][-1]["image"], np.uint8), cv2.IMREAD_COLOR)
    b = cv2.imdecode(np.frombuffer(results["b"][1][-1]["image"], np.uint8), cv2.IMREAD_COLOR)
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() > 0.1


def _encode(img: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def test_odd_images_get_clear_answers(backend, portrait_png):
    bgr = cv2.imread(str(portrait_png))
    blank = np.full((200, 200, 3), 127, np.uint8)
    cases = {
        "tiny": (_encode(cv2.resize(bgr, (16, 16))), {"bad_image"}),
        "noface": (_encode(blank), {"no_face"}),
        "garbage": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, {"bad_image"}),
        "gray": (_encode(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)), {"result"}),
        "alpha": (_encode(np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])), {"result"}),
    }
    with Client(backend.host, backend.port) as c:
        require(c, "track")
        for name, (data, want) in cases.items():
            reply, _ = c.request({"type": "track", "id": name, "image": data})
            got = reply["type"] if reply["type"] == "result" else reply["code"]
            assert got in want, (name, reply)
            if reply["type"] == "result":
                assert reply["expression"].shape == (1, 64)
                assert any("converted" in n or "composited" in n for n in reply["notes"]) \
                    or name == "alpha"


def test_huge_image_is_downscaled_and_said_so(backend, portrait_png):
    bgr = cv2.imread(str(portrait_png))
    big = cv2.resize(bgr, (10000, 10000), interpolation=cv2.INTER_NEAREST)  # the 100 Mpx limit
    data = _encode(big, ".jpg")
    with Client(backend.host, backend.port) as c:
        require(c, "track")
        reply, _ = c.request({"type": "track", "id": 1, "image": data})
        assert reply["type"] == "result", reply
        assert any("downscaled from 10000x10000" in n for n in reply["notes"])


def test_cmyk_image(tmp_path, backend, portrait_png):
    from PIL import Image

    path = tmp_path / "cmyk.jpg"
    Image.open(portrait_png).convert("CMYK").save(path)
    with Client(backend.host, backend.port) as c:
        require(c, "track")
        reply, _ = c.request({"type": "track", "id": 1, "image": path.read_bytes()})
        assert reply["type"] == "result", reply


def test_stalled_writer_does_not_block_others(backend):
    """A client that announces a frame and never finishes it does not hold up anyone else."""
    stalled = socket.create_connection((backend.host, backend.port), timeout=10)
    stalled.recv(65536)
    stalled.sendall(struct.pack(">I", 1000) + b"\x82")
    t0 = time.time()
    with Client(backend.host, backend.port) as c:
        reply, _ = c.request({"type": "ping", "id": 1})
        assert reply["type"] == "pong" and time.time() - t0 < 5
    stalled.close()


def test_several_faces_largest_is_used_and_said(backend, portrait_png):
    bgr = cv2.imread(str(portrait_png))
    small = cv2.resize(bgr, (bgr.shape[1] // 2, bgr.shape[0] // 2))
    canvas = np.full((bgr.shape[0], bgr.shape[1] + small.shape[1], 3), 90, np.uint8)
    canvas[:, : bgr.shape[1]] = bgr
    canvas[: small.shape[0], bgr.shape[1]:] = small
    with Client(backend.host, backend.port) as c:
        require(c, "track")
        reply, _ = c.request({"type": "track", "id": 1, "image": _encode(canvas)})
        assert reply["type"] == "result", reply
        assert any("several faces" in n and "largest" in n for n in reply["notes"]), reply["notes"]
        # the landmarks are on the big face (left part), not the small copy
        assert reply["landmarks"][0, :, 0].max() < bgr.shape[1]


def test_render_formats_over_the_wire(backend, portrait_png):
    import os

    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # read when the EXR codec is first used
    exp, pose = curves(1)
    with Client(backend.host, backend.port) as c:
        require(c, "render")
        for fmt, magic, dtype in (("png", b"\x89PNG", np.uint8), ("png16", b"\x89PNG", np.uint16),
                                  ("exr", b"\x76\x2f\x31\x01", np.float32)):
            reply, stream = c.request({"type": "render", "id": fmt, "portrait":
                                       portrait_png.read_bytes(), "expression": exp,
                                       "pose": pose, "format": fmt, "max_side": 192})
            assert reply["type"] == "result", reply
            frame = [m for m in stream if m["type"] == "frame"][0]
            assert frame["format"] == fmt and frame["image"][:4] == magic
            img = cv2.imdecode(np.frombuffer(frame["image"], np.uint8), cv2.IMREAD_UNCHANGED)
            assert img.dtype == dtype and img.shape[:2] == (192, 192)


# ---------------------------------------------------------------- every bad input, one error

@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return bad_media(tmp_path_factory.mktemp("bad"))


def _speechish(seconds: float = 2.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _final(c: Client, msg: dict) -> dict:
    reply, _ = c.request(msg)
    return reply


BAD_IMAGES = [("bomb.png", "too_large", "900 Mpx; the limit is 100 Mpx"),
              ("truncated.png", "bad_image", "truncated"),
              ("truncated.jpg", "bad_image", "truncated"),
              ("corrupt.png", "bad_image", "not an image")]


@pytest.mark.parametrize("key, code, text", BAD_IMAGES)
@pytest.mark.parametrize("where", ["track", "render", "reference"])
def test_bad_image_bytes_get_a_stable_code(backend, bad, where, key, code, text):
    data = bad[key].read_bytes()
    exp, pose = curves(2)
    msg = {"track": {"type": "track", "id": 1, "image": data},
           "render": {"type": "render", "id": 1, "portrait": data, "expression": exp,
                      "pose": pose},
           "reference": {"type": "generate", "id": 1, "audio": wav_bytes(_speechish()),
                         "reference_image": data}}[where]
    with Client(backend.host, backend.port) as c:
        require(c, "generate" if where == "reference" else where)
        t0 = time.time()
        reply = _final(c, msg)
        assert reply["type"] == "error" and reply["code"] == code, reply
        assert text in reply["message"] and "\n" not in reply["message"]
        assert time.time() - t0 < 30  # refused from the header, never decoded
        assert _final(c, {"type": "ping", "id": "after"})["type"] == "pong"
    assert backend.alive()


@pytest.mark.parametrize("key, text", [
    ("truncated.mp4", "not an audio file flowvq can read"),
    ("silent_video.mp4", "has no audio track"),
    ("20ch.wav", "at most 16 channels"),
    ("1khz.wav", "sample rate 1000 Hz"),
])
def test_bad_audio_bytes_get_bad_audio(backend, bad, key, text):
    with Client(backend.host, backend.port) as c:
        require(c, "generate")
        reply = _final(c, {"type": "generate", "id": 1, "audio": bad[key].read_bytes()})
        assert reply["type"] == "error" and reply["code"] == "bad_audio", reply
        assert text in reply["message"]


@pytest.mark.parametrize("samples, rate, code", [
    (np.zeros((32000, 20), np.float32) + 0.1, 16000, "bad_audio"),  # 20 channels
    (_speechish(), 0, "bad_request"),
    (_speechish(), -16000, "bad_request"),
    (_speechish(), 1e12, "bad_request"),
])
def test_bad_samples_get_a_stable_code(backend, samples, rate, code):
    with Client(backend.host, backend.port) as c:
        require(c, "generate")
        reply = _final(c, {"type": "generate", "id": 1, "samples": samples, "sample_rate": rate})
        assert reply["type"] == "error" and reply["code"] == code, reply


@pytest.mark.parametrize("fps", [float("nan"), 0.0, -25.0, float("inf")])
def test_frame_rates_that_are_not_positive_and_finite_are_refused(backend, fps):
    with Client(backend.host, backend.port) as c:
        reply = _final(c, {"type": "generate", "id": 1, "audio": wav_bytes(_speechish()),
                           "fps": fps})
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply
        assert "fps" in reply["message"]


def test_ntsc_frame_rate_is_accepted(backend):
    with Client(backend.host, backend.port) as c:
        require(c, "generate")
        reply = _final(c, {"type": "generate", "id": 1, "audio": wav_bytes(_speechish()),
                           "fps": 23.976, "takes": 1})
        assert reply["type"] == "result", reply
        take = reply["takes"][0]
        assert take["expression"].shape[0] == int(np.ceil(reply["duration"] * 23.976))


@pytest.mark.parametrize("mode", ["LA", "RGBA", "I;16"])
def test_two_and_four_channel_and_16_bit_images_are_read(backend, portrait_png, tmp_path, mode):
    from PIL import Image

    path = tmp_path / f"portrait_{mode.replace(';', '')}.png"
    im = Image.open(portrait_png)
    (im.convert("I").point(lambda v: v * 257).convert("I;16") if mode == "I;16"
     else im.convert(mode)).save(path)
    with Client(backend.host, backend.port) as c:
        require(c, "track")
        reply = _final(c, {"type": "track", "id": 1, "image": path.read_bytes()})
        assert reply["type"] == "result", reply
