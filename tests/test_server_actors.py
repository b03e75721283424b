"""`flowvq serve --actors DIR`: hello lists the actor profiles by id, a generate names one by id (never a
path), an unknown id gets one clear error. The profile here is made by hand around the shipped checkpoint
(what `flowvq actor learn` writes; tests/test_actor.py learns a real one)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import BackendProcess
from flowvq.actor.profile import FORMAT, KIND, MOUTH_CHANNELS, ActorProfile
from flowvq.fcg.checkpoint import DEFAULT_CHECKPOINT
from flowvq_shared.takes import Take
from wire import Client


def make_profile(folder, ident: str) -> None:
    (folder / "bank").mkdir(parents=True)
    shutil.copy(DEFAULT_CHECKPOINT, folder / "fcg.pt")
    np.savez(folder / "bank" / "bank.npz", expression=np.zeros((1, 64), np.float32))
    m = len(MOUTH_CHANNELS)
    doc = {"format": FORMAT, "kind": KIND, "id": ident, "sources": [], "fit": {"lipsync_r": {"actor": 0.5}},
           "files": {"fcg": "fcg.pt", "bank": "bank/bank.npz"},
           "estimated": {"lead_shift_s": 0.04, "mouth_scale": [1.2] * m, "mouth_centre": [0.1] * m,
                         "generated_mouth_centre": [0.1] * m, "pose_scale": [1.0] * 6,
                         "neutral_expression": [0.0] * 64}}
    (folder / "actor.json").write_text(json.dumps(doc))
    ActorProfile.load(folder)  # as strict as the server will be


@pytest.fixture(scope="module")
def actors_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("actors")
    make_profile(root / "anna_folder", "anna")
    (root / "junk").mkdir()
    (root / "junk" / "actor.json").write_text("not json")  # skipped, said in the log, never fatal
    server = BackendProcess("--no-zeroconf", "--actors", str(root))
    yield server
    server.stop()


def test_hello_lists_actors_and_generate_names_one(actors_server, speech_wav):
    with Client(actors_server.host, actors_server.port, timeout=300) as c:
        assert [a["id"] for a in c.hello["actors"]] == ["anna"]
        assert "path" not in c.hello["actors"][0]  # clients never see or send server paths
        audio = speech_wav.read_bytes()
        reply, _ = c.request({"type": "generate", "id": 1, "audio": audio, "seed": 2, "actor": "anna"})
        assert reply["type"] == "result", reply
        take = Take.from_wire(reply["takes"][0])
        assert take.settings.actor == "anna" and reply["model"]["actor"] == "anna"
        assert "actor_path" not in reply["model"]
        plain, _ = c.request({"type": "generate", "id": 2, "audio": audio, "seed": 2})
        assert np.abs(Take.from_wire(plain["takes"][0]).expression - take.expression).max() > 0.01
        bad, _ = c.request({"type": "generate", "id": 3, "audio": audio, "actor": "bob"})
        assert bad["type"] == "error" and bad["code"] == "bad_request" and "anna" in bad["message"]
        path, _ = c.request({"type": "generate", "id": 4, "audio": audio, "actor": "../anna_folder"})
        assert path["type"] == "error" and "actor profile id" in path["message"]


def _upload(c: Client, uid: str, data: bytes, name: str, chunk: int = 300_000) -> dict:
    reply = None
    for off in range(0, len(data), chunk):
        reply, _ = c.request({"type": "upload", "id": uid, "offset": off, "total": len(data),
                              "data": data[off:off + chunk], "name": name})
        assert reply["type"] == "result", reply
    return reply


def test_uploads_are_checked_chunk_by_chunk(actors_server):
    with Client(actors_server.host, actors_server.port) as c:
        assert "upload" in c.hello["capabilities"] and "learn_actor" in c.hello["capabilities"]
        first, _ = c.request({"type": "upload", "id": "u1", "offset": 0, "total": 10, "data": b"12345",
                              "name": "clip.mp4"})
        assert first["received"] == 5 and not first["complete"]
        gap, _ = c.request({"type": "upload", "id": "u1", "offset": 7, "total": 10, "data": b"890"})
        assert gap["type"] == "error" and "offset 5" in gap["message"]
        big, _ = c.request({"type": "upload", "id": "u2", "offset": 0, "total": 2**40, "data": b"x"})
        assert big["type"] == "error" and big["code"] == "too_large" and "GiB" in big["message"]
        path, _ = c.request({"type": "upload", "id": "u3", "offset": 0, "total": 1, "data": b"x",
                             "name": "../../etc/passwd"})
        assert path["type"] == "error" and "plain file name" in path["message"]
        half, _ = c.request({"type": "learn_actor", "id": "l1", "uploads": ["u1"], "name": "zoe"})
        assert half["type"] == "error" and "incomplete (5 of 10 bytes)" in half["message"]
        ping, _ = c.request({"type": "ping", "id": "p"})
        assert ping["type"] == "pong"  # the connection goes on


def test_learn_actor_from_an_upload_streams_progress_and_cancels(actors_server):
    from conftest import shared_data

    video = shared_data("video_with_audio", "obama_weekly_address_20s.mp4")
    with Client(actors_server.host, actors_server.port, timeout=300) as c:
        done = _upload(c, "clip", video.read_bytes(), video.name)
        assert done["complete"]
        c.send({"type": "learn_actor", "id": "learn", "uploads": ["clip"], "name": "barack", "steps": 5})
        while True:  # it runs: tracking progress arrives, then we cancel
            msg = c.recv()
            assert msg["type"] == "progress", msg
            if msg["stage"].startswith("tracking") and msg["fraction"] > 0:
                break
        c.send({"type": "cancel", "id": "learn"})
        while (msg := c.recv())["type"] == "progress":
            pass
        assert msg["type"] == "error" and msg["code"] == "cancelled", msg
        ping, _ = c.request({"type": "ping", "id": "p"})
        assert ping["type"] == "pong"
    with Client(actors_server.host, actors_server.port) as c:
        assert [a["id"] for a in c.hello["actors"]] == ["anna"]  # a cancelled learn offers nothing


def test_learn_actor_needs_an_actors_folder(backend):
    with Client(backend.host, backend.port) as c:
        assert "learn_actor" in c.hello["not_implemented"]
        reply, _ = c.request({"type": "learn_actor", "id": 1, "uploads": ["x"], "name": "zoe"})
        assert reply["type"] == "error" and reply["code"] == "not_implemented" and "--actors" in reply["message"]
