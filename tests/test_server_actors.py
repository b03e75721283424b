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
