"""`dub` over the protocol: a real 2 s shot (cut from ../shared/data) uploaded in chunks to a real
`flowvq serve`, dubbed to a take of closed-mouth curves, every frame streamed back at the shot's size;
refusals come back as stable codes and the server goes on serving; the server's folders are removed."""
from __future__ import annotations

import os
import subprocess

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import BackendProcess, shared_data
from flowvq_shared import messages as m
from flowvq_shared import protocol as p
from flowvq_shared.settings import GenerateSettings
from flowvq_shared.takes import Take
from wire import Client, wav_bytes

SHOT_SECONDS = 2.0
SHOT_FPS = 25  # obama_weekly_address_20s.mp4: 450 x 450 at 25 fps


def cut_shot(source, out, seconds: float = SHOT_SECONDS):
    """The first `seconds` of `source`, re-encoded (a cut on a frame boundary, sound kept)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(source),
                    "-t", f"{seconds:g}", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out)],
                   check=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    source = shared_data("video_with_audio", "obama_weekly_address_20s.mp4")
    return cut_shot(source, tmp_path_factory.mktemp("shot") / "obama_2s.mp4")


@pytest.fixture(scope="module")
def server_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("server_tmp")


@pytest.fixture(scope="module")
def dub_server(server_tmp):
    """A server whose temporary folders (uploads, dubs) land in `server_tmp`, so the test can see them go."""
    saved = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(server_tmp)
    try:
        server = BackendProcess("--no-zeroconf", "--no-warm")
    finally:
        os.environ.pop("TMPDIR") if saved is None else os.environ.__setitem__("TMPDIR", saved)
    yield server
    server.stop()


def upload(c: Client, uid: str, data: bytes, name: str, chunk: int = 40_000) -> None:
    for off in range(0, len(data), chunk):
        reply, _ = c.request({"type": "upload", "id": uid, "offset": off, "total": len(data),
                              "data": data[off:off + chunk], "name": name})
        assert reply["type"] == "result", reply
    assert reply["complete"]


def closed_mouth(frames: int, fps: float = SHOT_FPS) -> dict:
    return {"expression": np.zeros((frames, 64), np.float32), "fps": float(fps)}


def shot_frames(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while (got := cap.read())[0]:
        out.append(got[1])
    cap.release()
    return out


def test_dub_request_on_the_wire():
    take = Take(expression=np.zeros((10, 64)), pose=np.zeros((10, 6)), settings=GenerateSettings(fps=24.0))
    whole = m.parse_request({"type": "dub", "id": 1, "shot": "s", "take": take.to_wire(), "actor": "anna",
                             "emotion": "sad", "format": "exr"})
    assert whole.line_fps == 24.0 and whole.expression.shape == (10, 64) and whole.format == "exr"
    assert whole.settings.actor == "anna" and whole.settings.emotion == "sad"
    again = m.parse_request(whole.to_wire())  # the wire form reads back as the same request
    assert again.line_fps == 24.0 and np.array_equal(again.expression, whole.expression)
    assert again.settings == whole.settings and again.shot == "s"
    audio = m.parse_request({"type": "dub", "id": 2, "shot": 7, "audio_upload": "line"})
    assert audio.audio_upload == "line" and audio.format == "png"
    cases = [({}, "'shot' is required"), ({"shot": "s"}, "exactly one"),
             ({"shot": "s", "audio": b"x", "take": closed_mouth(5)}, "exactly one"),
             ({"shot": True, "audio": b"x"}, "upload id"), ({"shot": "s", "take": [1]}, "must be a map"),
             ({"shot": "s", "take": {"expression": np.zeros((5, 63)), "fps": 25}}, "shape"),
             ({"shot": "s", "take": {"expression": np.full((5, 64), np.nan), "fps": 25}}, "NaN"),
             ({"shot": "s", "take": {"expression": np.zeros((5, 64)), "fps": 0}}, "fps"),
             ({"shot": "s", "take": closed_mouth(0)}, "no frames"),
             ({"shot": "s", "audio": b"x", "format": "jpg"}, "format"),
             ({"shot": "s", "audio": b"x", "actor": "../anna"}, "actor profile id"),
             ({"shot": "s", "take": {**take.to_wire(), "names": list(reversed(take.names))}}, "in their order")]
    for patch, text in cases:
        with pytest.raises(p.ProtocolError, match=text):
            m.parse_request({"type": "dub", "id": 1, **patch})
    with pytest.raises(p.ProtocolError) as e:
        m.parse_request({"type": "dub", "id": 1, "shot": "s", "take": closed_mouth(m.MAX_RENDER_FRAMES + 1)})
    assert e.value.code == "too_large"


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "shot", "audio", "audio_upload", "take", "format", "fps", "actor",
                                        "emotion"]),
                       st.none() | st.booleans() | st.integers() | st.text(max_size=4) | st.binary(max_size=4)
                       | st.dictionaries(st.sampled_from(["expression", "fps", "settings", "pose", "names"]),
                                         st.none() | st.integers() | st.text(max_size=3) | st.lists(st.integers(),
                                                                                                    max_size=3)),
                       max_size=6))
def test_dub_validation_never_crashes(fields):
    try:
        assert m.parse_request({"type": "dub", **fields}).type == "dub"
    except p.ProtocolError as e:
        assert e.code in p.ERROR_CODES


def test_dub_a_real_shot_streams_every_frame(dub_server, server_tmp, shot):
    original = shot_frames(shot)
    n, (h, w) = len(original), original[0].shape[:2]
    assert n == SHOT_SECONDS * SHOT_FPS
    with Client(dub_server.host, dub_server.port, timeout=600) as c:
        assert "dub" in c.hello["capabilities"], c.hello["not_implemented"]
        upload(c, "shot", shot.read_bytes(), shot.name)
        reply, stream = c.request({"type": "dub", "id": "d1", "shot": "shot", "take": closed_mouth(n)})
        assert reply["type"] == "result", reply
        frames = [msg for msg in stream if msg["type"] == "frame"]
        assert [f["index"] for f in frames] == list(range(n))  # every frame, in order
        assert {f["total"] for f in frames} == {n} and {f["format"] for f in frames} == {"png"}
        images = [cv2.imdecode(np.frombuffer(f["image"], np.uint8), cv2.IMREAD_COLOR) for f in frames]
        assert all(img.shape == (h, w, 3) for img in images)  # the shot's own size
        assert any(msg["type"] == "progress" and msg["stage"] == "dubbing" for msg in stream)
        assert reply["frames"] == n and (reply["width"], reply["height"]) == (w, h)
        assert reply["fps"] == pytest.approx(SHOT_FPS) and 0 < reply["dubbed_frames"] <= n
        assert reply["line_frames"] == n and reply["bank"]["from"] == "the shot itself"
        assert str(server_tmp) not in repr(reply)  # no server paths go to clients
        # the mouth moved (closed), and the frames stay the shot's: the upper half is as filmed
        moved = max(float(np.abs(a.astype(int) - b).mean()) for a, b in zip(images, original))
        assert moved > 0.05
        upper = np.mean([np.abs(a[: h // 3].astype(int) - b[: h // 3]).mean() for a, b in zip(images, original)])
        print(f"dub of {n} frames: {reply['seconds']} s; mean change of the upper third {upper:.2f} / 255")
        assert upper < 3.0
    assert not list(server_tmp.glob("flowvq-dub-*"))  # the frames' folder went after streaming


def test_a_line_longer_than_the_shot_is_refused_and_the_server_goes_on(dub_server, shot):
    with Client(dub_server.host, dub_server.port, timeout=300) as c:
        upload(c, "shot", shot.read_bytes(), shot.name)
        reply, stream = c.request({"type": "dub", "id": "long", "shot": "shot", "take": closed_mouth(100)})
        assert reply["type"] == "error" and reply["code"] == "too_large", reply
        assert "4.00 s" in reply["message"] and "2.00 s" in reply["message"]  # both lengths named
        assert not [msg for msg in stream if msg["type"] == "frame"]
        silent = wav_bytes(np.zeros(32000, np.float32))
        reply, _ = c.request({"type": "dub", "id": "silent", "shot": "shot", "audio": silent})
        assert reply["type"] == "error" and reply["code"] == "bad_audio", reply
        reply, _ = c.request({"type": "dub", "id": "nothing", "shot": "nope", "take": closed_mouth(10)})
        assert reply["type"] == "error" and "upload 'nope' is unknown" in reply["message"]
        reply, _ = c.request({"type": "dub", "id": "who", "shot": "shot", "take": closed_mouth(10),
                              "actor": "bob"})
        assert reply["type"] == "error" and "unknown actor 'bob'" in reply["message"]
        hello, _ = c.request({"type": "hello", "id": "h", "protocol": p.PROTOCOL_VERSION})
        assert hello == {"type": "result", "id": "h", "request": "hello"}
    with Client(dub_server.host, dub_server.port) as again:
        assert again.hello["type"] == "hello" and "dub" in again.hello["capabilities"]


def test_a_dub_cancels_between_frames(dub_server, shot):
    with Client(dub_server.host, dub_server.port, timeout=300) as c:
        upload(c, "shot", shot.read_bytes(), shot.name)
        c.send({"type": "dub", "id": "d", "shot": "shot", "take": closed_mouth(50)})
        while (msg := c.recv())["type"] != "frame":  # finding the face, choosing mouths...
            assert msg["type"] == "progress", msg
        c.send({"type": "cancel", "id": "d"})
        frames = 1
        while (msg := c.recv())["type"] in ("progress", "frame"):
            frames += msg["type"] == "frame"
        assert msg["type"] == "error" and msg["code"] == "cancelled", msg
        assert frames < 50
        pong, _ = c.request({"type": "ping", "id": "p"})
        assert pong["type"] == "pong"
