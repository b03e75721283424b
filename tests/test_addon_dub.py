"""The add-on's bpy-free side of Dub Movie Strip: numbered folders and names that never overwrite,
the request (the contract's checks before anything is sent), and a client job that uploads the shot
and the line in chunks on its own connection before asking, against a real `flowvq serve`."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blender_addon import client, dubs  # noqa: E402
from flowvq_shared import protocol  # noqa: E402
from flowvq_shared.settings import GenerateSettings  # noqa: E402
from flowvq_shared.takes import Take  # noqa: E402

from conftest import BackendProcess, shared_data  # noqa: E402
from wire import wav_bytes  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def test_each_dub_gets_a_new_numbered_folder(tmp_path):
    root = dubs.dubs_root(str(tmp_path / "film.blend"))
    assert root == tmp_path / "flowvq_dubs"
    assert dubs.dubs_root("").name == "flowvq_dubs" and dubs.dubs_root("", "/x/y") == Path("/x/y")
    first, n1 = dubs.new_folder(root, "shot")
    second, n2 = dubs.new_folder(root, "shot")
    assert (n1, n2) == (1, 2) and first.name == "shot_dub_001" and second.name == "shot_dub_002"
    (first / "frame_00001.png").write_bytes(b"the artist's")
    dubs.discard(str(second))  # a failed dub removes its own folder...
    third, n3 = dubs.new_folder(root, "shot")
    assert n3 == 2 and (first / "frame_00001.png").read_bytes() == b"the artist's"  # ...never another's
    (root / "shot_dub_007").mkdir()  # a later number made by hand: the next goes above it
    assert dubs.new_folder(root, "shot")[1] == 8
    assert dubs.new_folder(root, "other")[1] == 1
    assert dubs.safe_stem("Take 3/final: ok?") == "Take_3_final_ok" and dubs.safe_stem("...") == "shot"


def test_strip_names_and_channels():
    assert dubs.unique_name("shot dub 001", ["shot"]) == "shot dub 001"
    assert dubs.unique_name("shot dub 001", ["shot dub 001", "shot dub 001 2"]) == "shot dub 001 3"
    strip = lambda ch, a, b: SimpleNamespace(channel=ch, frame_final_start=a, frame_final_end=b)  # noqa: E731
    strips = [strip(1, 11, 61), strip(2, 0, 20), strip(3, 70, 90)]
    assert dubs.free_channel(strips, 1, 11, 61) == 3  # channel 2 overlaps frames 11-20; 3 is free there
    assert dubs.free_channel([strip(1, 11, 61)], 1, 11, 61) == 2
    assert dubs.upload_name("/a/b/line.wav", "x.wav") == "line.wav" and dubs.upload_name("", "x.wav") == "x.wav"
    assert len(dubs.upload_name("/" + "n" * 300 + ".mp4", "x")) == 200


def test_rate_note_says_what_another_frame_rate_means():
    assert dubs.rate_note(25.0, 25.0, 50) == ""
    note = dubs.rate_note(25.0, 24.0, 50)
    assert "25 fps" in note and "24 fps" in note and "50 frames" in note and "2.08 s" in note


def test_the_request_is_checked_before_anything_is_sent():
    s = GenerateSettings(emotion="happy", actor="anna")
    audio = dubs.request(s, "exr")
    assert audio["audio_upload"] == dubs.LINE_UPLOAD and audio["shot"] == dubs.SHOT_UPLOAD
    assert audio["format"] == "exr" and audio["actor"] == "anna" and "id" not in audio
    take = Take(expression=np.zeros((12, 64)), pose=np.zeros((12, 6)), settings=GenerateSettings(fps=24.0))
    assert dubs.request(s, "png", take)["take"]["settings"]["fps"] == 24.0
    with pytest.raises(protocol.ProtocolError, match="format"):
        dubs.request(s, "tiff")
    odd = Take(expression=np.zeros((12, 64)), pose=np.zeros((12, 6)), names=list(reversed(take.names)))
    with pytest.raises(protocol.ProtocolError, match="64 FlowVQ channels"):
        dubs.request(s, "png", odd)


@pytest.fixture(scope="module")
def server():
    s = BackendProcess("--no-zeroconf", "--no-warm")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    from test_server_dub import cut_shot

    return cut_shot(shared_data("video_with_audio", "obama_weekly_address_20s.mp4"),
                    tmp_path_factory.mktemp("shot") / "shot.mp4")


def test_a_job_uploads_its_files_first_and_gets_the_backends_refusal(server, shot, monkeypatch):
    """Shot and line go up in chunks (progress says so) on the job's connection; the dub then
    refuses a line longer than the shot with both lengths, as one Failed event."""
    monkeypatch.setattr(client, "UPLOAD_CHUNK", 30_000)  # several chunks of a small test shot
    long_line = wav_bytes(0.3 * np.sin(np.arange(16000 * 5) / 16000 * 2 * np.pi * 220).astype(np.float32))
    job = client.Job(client.Endpoint(server.host, server.port), dubs.request(GenerateSettings(), "png"),
                     uploads=(client.Upload(dubs.SHOT_UPLOAD, shot.name, path=str(shot)),
                              client.Upload(dubs.LINE_UPLOAD, "line.wav", data=long_line)))
    events = []
    end = client.run_blocking(job, events.append, timeout=240)
    stages = [e.stage for e in events if isinstance(e, client.Progress)]
    assert sum(s == f"uploading {shot.name}" for s in stages) >= 3 and "uploading line.wav" in stages
    fractions = [e.fraction for e in events if isinstance(e, client.Progress) and e.stage.startswith("upl")]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert isinstance(end, client.Failed) and end.code == "too_large", end
    assert "5.00 s" in end.message and "2.00 s" in end.message


def test_an_upload_the_backend_refuses_ends_the_job(server):
    job = client.Job(client.Endpoint(server.host, server.port), dubs.request(GenerateSettings(), "png"),
                     uploads=(client.Upload(dubs.SHOT_UPLOAD, "../shot.mp4", data=b"x" * 10),))
    end = client.run_blocking(job, timeout=60)
    assert isinstance(end, client.Failed) and end.code == "bad_request"
    assert end.message.startswith("uploading ../shot.mp4:") and "plain file name" in end.message
    empty = client.Job(client.Endpoint(server.host, server.port), {"type": "ping"},
                       uploads=(client.Upload("x", "empty.mp4", data=b""),))
    end = client.run_blocking(empty, timeout=60)
    assert isinstance(end, client.Failed) and "empty" in end.message


def test_cancel_while_uploading(server, tmp_path, monkeypatch):
    monkeypatch.setattr(client, "UPLOAD_CHUNK", 1024)
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 2_000_000)
    job = client.Job(client.Endpoint(server.host, server.port), dubs.request(GenerateSettings(), "png"),
                     uploads=(client.Upload(dubs.SHOT_UPLOAD, big.name, path=str(big)),))

    def on_event(event):
        if isinstance(event, client.Progress) and event.stage.startswith("uploading"):
            job.cancel()

    end = client.run_blocking(job, on_event, timeout=60)
    assert isinstance(end, client.Failed) and end.code == "cancelled" and "uploading big.mp4" in end.message
