"""The add-on's bpy-free network side against a real `flowvq serve` on 127.0.0.1.

Discovery over zeroconf (loopback only), the greeting, errors that carry the backend's code and
message, tokens, cancelling, and the timeouts that keep Blender from ever waiting forever.
"""
from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blender_addon import client, discovery, plates  # noqa: E402
from flowvq_shared import protocol  # noqa: E402

from conftest import BackendProcess  # noqa: E402

FLOWVQ = Path(sys.executable).parent / "flowvq"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

pytestmark = pytest.mark.timeout(120)


class Server(BackendProcess):
    @property
    def endpoint(self):
        return client.Endpoint(self.host, self.port)


@pytest.fixture(scope="module")
def server():
    s = Server()  # zeroconf advertising on 127.0.0.1 (the server's default)
    yield s
    s.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_discovery_finds_the_server_on_loopback(server):
    t0 = time.monotonic()
    found = discovery.discover(timeout=5.0)
    assert time.monotonic() - t0 < 5.0
    mine = [s for s in found if s.port == server.port]
    assert mine and mine[0].host == "127.0.0.1" and mine[0].properties.get("protocol") == "1"


def test_probe_reads_the_greeting(server):
    info = client.probe(server.endpoint)
    assert info.server.startswith("flowvq") and info.protocol == protocol.PROTOCOL_VERSION
    assert info.device and not info.auth_required and info.max_frame > 0
    for request, why in info.not_implemented.items():
        assert not info.available(request) and why


def test_unreachable_backend_fails_fast_with_a_readable_message():
    port = free_port()
    t0 = time.monotonic()
    event = client.run_blocking(client.Job(client.Endpoint("127.0.0.1", port),
                                           {"type": "ping"}))
    assert time.monotonic() - t0 < 3
    assert isinstance(event, client.Failed) and event.code == "unreachable"
    assert f"127.0.0.1:{port}" in event.message and "flowvq serve" in event.message


def test_silent_peer_times_out():
    """A port that accepts but never greets (not a FlowVQ backend) must not hang the add-on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        ep = client.Endpoint("127.0.0.1", listener.getsockname()[1])
        t0 = time.monotonic()
        event = client.run_blocking(client.Job(ep, {"type": "ping"}, greeting_timeout=0.5))
        assert time.monotonic() - t0 < 3
    # accepted but silent: reported as a backend that is still starting (or not ours)
    assert isinstance(event, client.Failed) and event.code == client.STARTING
    assert "sent no greeting within 0.5 s" in event.message


def test_connect_and_greeting_timeouts_are_separate():
    """A slow greeting (a backend still starting on a busy machine) is waited for generously,
    while the connect itself keeps its short timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def late_greeting():
            conn, _ = listener.accept()
            with conn:
                time.sleep(1.5)  # longer than the connect timeout below
                protocol.send_frame(conn, {"type": "hello", "protocol": protocol.PROTOCOL_VERSION,
                                           "server": "flowvq slow"})
                protocol.recv_frame(conn)  # our hello
                protocol.send_frame(conn, {"type": "hello", "id": "hello"})
                time.sleep(0.5)

        threading.Thread(target=late_greeting, daemon=True).start()
        ep = client.Endpoint("127.0.0.1", listener.getsockname()[1])
        info = client.probe(ep, timeout=0.5, greeting_timeout=10.0)
    assert info.server == "flowvq slow"


def test_not_a_flowvq_peer_is_named():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer():
            conn, _ = listener.accept()
            with conn:
                protocol.send_frame(conn, {"type": "banner", "text": "hello"})
                time.sleep(0.5)

        threading.Thread(target=answer, daemon=True).start()
        ep = client.Endpoint("127.0.0.1", listener.getsockname()[1])
        event = client.run_blocking(client.Job(ep, {"type": "ping"}))
    assert isinstance(event, client.Failed) and "not a FlowVQ backend" in event.message


def test_backend_errors_keep_code_and_message(server):
    info = client.probe(server.endpoint)
    # a request the server validates: an emotion that does not exist
    bad = client.run_blocking(client.Job(server.endpoint, {
        "type": "generate", "audio": b"RIFF", "emotion": "grumpy", "fps": 24.0}))
    assert isinstance(bad, client.Failed)
    if "generate" in info.not_implemented:
        assert bad.code in ("bad_request", "not_implemented")
    else:
        assert bad.code == "bad_request" and "grumpy" in bad.message
    # a face that is not an image
    render = client.run_blocking(client.Job(server.endpoint, {
        "type": "track", "image": b"not an image"}))
    assert isinstance(render, client.Failed) and render.message


def test_not_implemented_is_reported_with_the_servers_reason(tmp_path):
    # a backend without a trained FCG checkpoint: generate is not_implemented, with its reason
    s = Server("--checkpoint", str(tmp_path / "no_such_checkpoint.pt"), "--no-zeroconf")
    try:
        info = client.probe(s.endpoint)
        assert "generate" in info.not_implemented
        event = client.run_blocking(client.Job(s.endpoint, {
            "type": "generate", "audio": b"RIFF0000WAVE", "fps": 24.0}))
        assert isinstance(event, client.Failed)
        assert event.code == "not_implemented"
        assert event.message == info.not_implemented["generate"]
        assert "no_such_checkpoint.pt" in event.message
    finally:
        s.stop()


def test_events_arrive_in_order_through_the_job_board(server):
    got = []
    board = client.JobBoard()
    job = board.add(client.Job(server.endpoint, {"type": "face_model", "model": "default"}),
                    got.append)
    deadline = time.monotonic() + 60
    while board.drain() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not board.jobs and job.finished
    assert isinstance(got[0], client.Connected)
    assert isinstance(got[-1], (client.Result, client.Failed))
    if isinstance(got[-1], client.Result):
        assert got[-1].message["request"] == "face_model"
        assert got[-1].message["deltas"].shape[0] == 64


def test_cancel_before_start_and_during_a_job(server):
    job = client.Job(server.endpoint, {"type": "face_model", "model": "default"})
    job.cancel()
    event = client.run_blocking(job)
    assert isinstance(event, client.Failed) and event.code == "cancelled"
    # cancel as soon as the backend reports progress: it stops the job and says so
    job = client.Job(server.endpoint, {"type": "face_model", "model": "default"})

    def on_event(e):
        if isinstance(e, (client.Connected, client.Progress)):
            job.cancel()

    event = client.run_blocking(job, on_event)
    # a fast job may finish before the cancel lands; it must never hang or be lost
    assert isinstance(event, (client.Failed, client.Result))
    if isinstance(event, client.Failed):
        assert event.code == "cancelled"


def test_token_is_sent_and_a_wrong_one_refused():
    s = Server("--token", "sesame", "--no-zeroconf")
    try:
        ok = client.probe(client.Endpoint("127.0.0.1", s.port, "sesame"))
        assert ok.auth_required
        with pytest.raises(client.BackendError) as e:
            client.probe(client.Endpoint("127.0.0.1", s.port, "wrong"))
        assert e.value.code == "unauthorized"
        event = client.run_blocking(client.Job(client.Endpoint("127.0.0.1", s.port),
                                               {"type": "ping"}))
        assert isinstance(event, client.Failed) and event.code == "unauthorized"
    finally:
        s.stop()


def test_frame_writer_is_atomic_and_named_by_index(tmp_path):
    w = plates.FrameWriter(str(tmp_path))
    path = w({"type": "frame", "index": 3, "total": 10, "format": "png", "image": b"\x89PNG"})
    assert Path(path).name == "plate_00003.png" and Path(path).read_bytes() == b"\x89PNG"
    assert w.path(4, "exr").suffix == ".exr"
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(ValueError):
        w({"type": "frame", "index": 0})


def test_cancel_sends_the_protocol_cancel_and_reports_the_backends_answer():
    """A minimal protocol peer: greets, takes the request, waits for `cancel`, confirms it."""
    seen = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def peer():
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                protocol.send_frame(conn, {"type": "hello", "protocol": 1, "server": "peer",
                                           "capabilities": ["generate"], "device": "cpu"})
                hello = protocol.recv_frame(conn)
                protocol.send_frame(conn, {"type": "result", "id": hello["id"],
                                           "request": "hello"})
                request = protocol.recv_frame(conn)
                protocol.send_frame(conn, protocol.progress(request["id"], 0.1, "sampling"))
                cancel = protocol.recv_frame(conn)
                seen.extend([request, cancel])
                protocol.send_frame(conn, protocol.error("cancelled", "stopped at frame 12",
                                                         cancel["id"]))

        threading.Thread(target=peer, daemon=True).start()
        ep = client.Endpoint("127.0.0.1", listener.getsockname()[1])
        job = client.Job(ep, {"type": "generate", "audio": b"x", "fps": 24.0})

        def on_event(e):
            if isinstance(e, client.Progress):
                job.cancel()

        event = client.run_blocking(job, on_event, timeout=20)
    assert [m["type"] for m in seen] == ["generate", "cancel"]
    assert seen[1]["id"] == seen[0]["id"] == job.id
    assert event == client.Failed("cancelled", "stopped at frame 12")


def test_a_result_that_arrives_after_cancel_is_dropped():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def peer():  # a backend that finishes anyway
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                protocol.send_frame(conn, {"type": "hello", "protocol": 1, "server": "peer"})
                protocol.recv_frame(conn)
                protocol.send_frame(conn, {"type": "result", "id": "hello"})
                request = protocol.recv_frame(conn)
                protocol.send_frame(conn, protocol.progress(request["id"], 0.5, "sampling"))
                protocol.recv_frame(conn)  # the cancel
                protocol.send_frame(conn, {"type": "result", "id": request["id"],
                                           "request": "generate", "takes": []})

        threading.Thread(target=peer, daemon=True).start()
        ep = client.Endpoint("127.0.0.1", listener.getsockname()[1])
        job = client.Job(ep, {"type": "generate", "audio": b"x", "fps": 24.0})
        event = client.run_blocking(
            job, lambda e: job.cancel() if isinstance(e, client.Progress) else None, timeout=20)
    assert isinstance(event, client.Failed) and event.code == "cancelled"
    assert "dropped" in event.message


def test_a_request_too_big_to_send_is_refused_locally(server):
    huge = b"\0" * (client.protocol.DEFAULT_MAX_FRAME + 1)
    event = client.run_blocking(client.Job(server.endpoint, {
        "type": "generate", "audio": huge, "fps": 24.0}))
    assert isinstance(event, client.Failed) and event.code == "too_large"
    assert "too big to send" in event.message
