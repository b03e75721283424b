"""The real server over real TCP, driven by a raw client that only knows the framing."""
from __future__ import annotations

import signal
import socket
import struct
import subprocess
import threading
import time
from contextlib import contextmanager

import msgpack
import numpy as np
import pytest

from flowvq_shared import protocol as p

from conftest import BackendProcess
from wire import Client


def frame(obj) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


def recv(sock: socket.socket):
    """One decoded frame, or None when the server closed the connection."""
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (n,) = struct.unpack(">I", head)
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return msgpack.unpackb(body, raw=False)


def connect(backend) -> tuple[socket.socket, dict]:
    s = socket.create_connection((backend.host, backend.port), timeout=20)
    return s, recv(s)


def test_server_speaks_first_with_hello(backend):
    s, hello = connect(backend)
    with s:
        assert hello["type"] == "hello" and hello["protocol"] == p.PROTOCOL_VERSION
        assert "ping" in hello["capabilities"] and isinstance(hello["not_implemented"], dict)
        assert hello["auth_required"] is False
        s.sendall(frame({"type": "hello", "id": 1, "protocol": p.PROTOCOL_VERSION}))
        assert recv(s) == {"type": "result", "id": 1, "request": "hello"}
        s.sendall(frame({"type": "hello", "id": 2, "protocol": 99}))
        assert recv(s)["code"] == "unsupported_version"


@pytest.mark.parametrize("bad, code", [
    ({"type": "nope", "id": 1}, "unknown_type"),
    ({"type": "generate", "id": 2, "audio": b"RIFF", "emotion": "bored"}, "bad_request"),
    ({"type": "generate", "id": 3, "audio": b"RIFF", "takes": "three"}, "bad_request"),
    ({"type": "generate", "id": 4}, "bad_request"),
    ({"type": "cancel", "id": 99}, "bad_request"),
    ({"type": "render", "id": 5, "portrait": b"x",
      "expression": {"__ndarray__": True, "dtype": "<f4", "shape": [1000000000, 64], "data": b""},
      "pose": {"__ndarray__": True, "dtype": "<f4", "shape": [1, 6], "data": b"\0" * 24}},
     "too_large"),
    ({"type": "track", "id": 6, "image": {"__ndarray__": True, "dtype": "|O", "shape": [1],
                                          "data": b"\0" * 8}}, "bad_request"),
    ({"type": "generate", "id": 7, "samples": {"__ndarray__": True, "dtype": "<f4", "shape": [4],
                                               "data": b"\0" * 3}, "sample_rate": 16000},
     "bad_request"),
])
def test_bad_messages_get_an_error_and_the_connection_stays(backend, bad, code):
    s, _ = connect(backend)
    with s:
        s.sendall(frame(bad))
        reply = recv(s)
        assert reply["type"] == "error" and reply["code"] == code, reply
        assert isinstance(reply["message"], str) and reply["message"]
        s.sendall(frame({"type": "ping", "id": "after"}))
        assert recv(s) == {"type": "pong", "id": "after"}


@pytest.mark.parametrize("raw", [
    struct.pack(">I", 2**31),                     # announced length over the limit
    struct.pack(">I", 6) + b"\xc1\xc1\xc1\xc1\xc1\xc1",  # not msgpack
    struct.pack(">I", 3) + msgpack.packb([1, 2]),  # msgpack, but not a map
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",          # another protocol entirely
])
def test_framing_errors_close_only_that_connection(backend, raw):
    good, _ = connect(backend)
    bad, _ = connect(backend)
    with good, bad:
        bad.sendall(raw)
        reply = recv(bad)
        assert reply is None or reply["type"] == "error"
        if reply is not None:
            assert recv(bad) is None  # then closed
        good.sendall(frame({"type": "ping", "id": 1}))
        assert recv(good) == {"type": "pong", "id": 1}
    assert backend.alive()


def test_truncated_frame_then_disconnect_keeps_server_up(backend):
    s, _ = connect(backend)
    s.sendall(struct.pack(">I", 100) + b"\x81\xa4ty")
    s.close()
    s2, hello = connect(backend)
    with s2:
        assert hello["type"] == "hello"
        s2.sendall(frame({"type": "ping", "id": 1}))
        assert recv(s2)["type"] == "pong"


def test_concurrent_clients_with_garbage_in_between(backend):
    """A well-behaved client keeps working while others send garbage at the same time."""
    errors: list[str] = []

    def good_client():
        try:
            s, _ = connect(backend)
            with s:
                for i in range(30):
                    s.sendall(frame({"type": "ping", "id": i}))
                    if recv(s) != {"type": "pong", "id": i}:
                        errors.append(f"bad pong {i}")
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(repr(e))

    def garbage_client(seed):
        rng = np.random.default_rng(seed)
        for _ in range(10):
            s, _ = connect(backend)
            with s:
                s.sendall(rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8).tobytes())
                s.settimeout(5)
                try:
                    recv(s)
                except (socket.timeout, ConnectionError):
                    pass

    threads = [threading.Thread(target=good_client) for _ in range(2)]
    threads += [threading.Thread(target=garbage_client, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert backend.alive()


def test_generate_bad_audio_is_an_error_not_a_crash(backend):
    s, hello = connect(backend)
    with s:
        for rid, audio in enumerate([b"this is not audio at all" * 10, b"\x00" * 10], 1):
            s.sendall(frame({"type": "generate", "id": rid, "audio": audio, "emotion": "happy"}))
            reply = recv(s)
            while reply["type"] == "progress":
                reply = recv(s)
            want = {"bad_audio", "not_implemented"}
            assert reply["type"] == "error" and reply["code"] in want, reply
        silent = np.zeros(16000 * 2, np.float32)
        s.sendall(frame({"type": "generate", "id": 9, "samples": {
            "__ndarray__": True, "dtype": "<f4", "shape": [silent.size], "data": silent.tobytes()},
            "sample_rate": 16000}))
        reply = recv(s)
        while reply["type"] == "progress":
            reply = recv(s)
        assert reply["code"] in ("bad_audio", "not_implemented")
        if "generate" in hello["capabilities"]:
            assert "silent" in reply["message"]


def test_lan_mode_requires_the_token():
    # bound to loopback for the test (never a real interface here); --lan turns on the token
    b = BackendProcess("--no-zeroconf", "--lan", "--host", "127.0.0.1", "--token", "s3cret")
    try:
        s, hello = connect(b)
        with s:
            assert hello["auth_required"] is True
            s.sendall(frame({"type": "ping", "id": 1}))
            assert recv(s)["code"] == "unauthorized"
            assert recv(s) is None
        s, _ = connect(b)
        with s:
            s.sendall(frame({"type": "hello", "id": 1, "protocol": 1, "token": "wrong"}))
            assert recv(s)["code"] == "unauthorized"
            assert recv(s) is None
        s, _ = connect(b)
        with s:
            s.sendall(frame({"type": "hello", "id": 1, "protocol": 1, "token": "s3cret"}))
            assert recv(s)["type"] == "result"
            s.sendall(frame({"type": "ping", "id": 2}))
            assert recv(s)["type"] == "pong"
    finally:
        b.stop()


def test_shutdown_from_loopback_stops_the_server():
    b = BackendProcess("--no-zeroconf")
    s, _ = connect(b)
    with s:
        s.sendall(frame({"type": "shutdown", "id": 1}))
        assert recv(s)["type"] == "result"
    t0 = time.time()
    while b.alive() and time.time() - t0 < 30:  # it may first finish importing torch
        time.sleep(0.1)
    assert not b.alive() and b.proc.returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_closes_like_a_shutdown_and_removes_the_uploads(tmp_path, sig):
    # `kill`, a service manager or Ctrl-C: a half-uploaded video must not stay in the temp folder
    b = BackendProcess("--no-zeroconf", env={"TMPDIR": str(tmp_path)})
    try:
        with Client(b.host, b.port) as c:
            reply, _ = c.request({"type": "upload", "id": "u1", "offset": 0, "total": 10, "data": b"12345",
                                  "name": "clip.mp4"})
            assert reply["type"] == "result" and reply["received"] == 5
            assert len(list(tmp_path.glob("flowvq-uploads-*"))) == 1
            b.proc.send_signal(sig)
            b.proc.wait(60)  # it may first finish importing torch
        assert b.proc.returncode == 0, b.stderr_text()[-2000:]
        assert list(tmp_path.glob("flowvq-uploads-*")) == []
    finally:
        b.stop()


def test_zeroconf_announces_on_loopback():
    from zeroconf import IPVersion, ServiceBrowser, Zeroconf

    b = BackendProcess()
    found = threading.Event()
    seen: dict = {}
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        def on_change(zeroconf, service_type, name, state_change):
            info = zeroconf.get_service_info(service_type, name, timeout=3000)
            if info is not None and info.port == b.port:
                seen.update(info.decoded_properties)
                seen["addresses"] = info.parsed_addresses()
                found.set()

        ServiceBrowser(zc, "_flowvq._tcp.local.", handlers=[on_change])
        assert found.wait(10), "server not found over zeroconf on 127.0.0.1"
        assert seen["protocol"] == str(p.PROTOCOL_VERSION) and seen["auth"] == "none"
        assert seen["addresses"] == ["127.0.0.1"]
    finally:
        zc.close()
        b.stop()


@pytest.mark.parametrize("msg", [
    {"type": "generate", "id": 1, "audio": "/etc/passwd"},
    {"type": "track", "id": 2, "image": "../../../etc/shadow"},
    {"type": "render", "id": 3, "portrait": "/root/.ssh/id_rsa",
     "expression": np.zeros((1, 64), np.float32), "pose": np.zeros((1, 6), np.float32)},
])
def test_paths_are_never_opened_for_a_client(backend, msg):
    """Audio and images travel as bytes: a string where bytes belong is refused, never opened."""
    body = p.pack_message(msg)
    s, _ = connect(backend)
    with s:
        s.sendall(struct.pack(">I", len(body)) + body)
        reply = recv(s)
        assert reply["type"] == "error" and reply["code"] == "bad_request"
        assert "bytes" in reply["message"]


@contextmanager
def busy_cores(n: int = 2):
    """n busy loops (`yes > /dev/null`): the CI box's 2 cores taken by something else."""
    procs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(n)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)


def test_cold_start_greets_at_once_with_both_cores_busy():
    """Accept and greet within 1 s of `listening on`, before torch and the FCG have loaded."""
    with busy_cores():
        b = BackendProcess("--no-zeroconf")  # returns as soon as `listening on` is read
        try:
            t0 = time.monotonic()
            s = socket.create_connection((b.host, b.port), timeout=5)
            connected = time.monotonic() - t0
            hello = recv(s)
            greeted = time.monotonic() - t0
        except BaseException:
            b.stop()
            raise
    try:
        with s:
            assert hello["type"] == "hello", hello
            assert connected < 1.0 and greeted < 1.0, (connected, greeted)
            assert set(hello["loading"]) <= {"torch", "fcg"}, hello["loading"]
        # the FCG warms in the background: a later hello says it is loaded, with no request made
        deadline = time.monotonic() + 120
        while True:
            with Client(b.host, b.port, timeout=10) as c:
                if not c.hello["loading"] or time.monotonic() > deadline:
                    break
            time.sleep(0.25)
        assert c.hello["loading"] == [] and c.hello["device"] != "detecting", c.hello
        if "generate" in c.hello["capabilities"]:
            assert c.hello["models"]["fcg"]["loaded"] is True, c.hello["models"]
    finally:
        b.stop()


def test_generate_during_the_model_load_waits_with_progress(speech_wav):
    b = BackendProcess("--no-zeroconf", "--no-warm")
    try:
        with Client(b.host, b.port) as c:
            assert c.hello["models"]["fcg"]["loaded"] is False
            if "generate" not in c.hello["capabilities"]:
                pytest.skip(c.hello["not_implemented"]["generate"])
            reply, stream = c.request({"type": "generate", "id": 1, "takes": 1,
                                       "audio": speech_wav.read_bytes()})
            assert reply["type"] == "result", reply
            stages = [m["stage"] for m in stream if m["type"] == "progress"]
            assert any(st.startswith("loading the FCG") for st in stages), stages
        with Client(b.host, b.port) as c:
            assert c.hello["models"]["fcg"]["loaded"] is True and c.hello["loading"] == []
    finally:
        b.stop()
