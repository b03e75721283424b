"""`flowvq serve --ray ADDR`: the add-on's front door (TCP, msgpack, hello, cancel) with generate
requests run on a pool of Ray actors of a real two-node local cluster (loopback, token auth)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from conftest import BackendProcess
from raycluster import LocalCluster
from wire import Client, wav_bytes

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster_server():
    mp = pytest.MonkeyPatch()
    with LocalCluster(nodes=1, cpus=1, head_cpus=1) as cluster:  # two CPU slots, one per node
        for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED",
                  "RAY_worker_niceness"):
            mp.setenv(k, cluster.env[k])
        server = BackendProcess("--no-zeroconf", "--ray", cluster.address, "--ray-workers", "2")
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:  # the pool starts after `listening on`
                with Client(server.host, server.port) as c:
                    ray_info = c.hello["ray"]
                if ray_info["connected"] or ray_info["error"]:
                    break
                time.sleep(1)
            assert ray_info["connected"], (ray_info, server.stderr_text()[-3000:])
            yield server, ray_info
        finally:
            server.stop()
            mp.undo()


def _speech(speech_wav, seconds: float) -> bytes:
    import soundfile as sf

    x, sr = sf.read(speech_wav, dtype="float32")
    x = x if x.ndim == 1 else x.mean(1)
    return wav_bytes(np.tile(x, int(np.ceil(seconds * sr / len(x))))[: int(seconds * sr)], sr)


def test_hello_reports_the_pool(cluster_server):
    _server, info = cluster_server
    assert info["workers"] == 2 and info["nodes"] == ["127.0.0.2", "127.0.0.3"]
    assert info["resources"]["CPU"] == 2


def test_two_clients_are_served_at_once(cluster_server, speech_wav, tmp_path):
    server, _ = cluster_server
    audio = _speech(speech_wav, 3.0)
    replies, times = {}, {}

    def one(seed: int) -> None:
        with Client(server.host, server.port, timeout=300) as c:
            t = time.monotonic()
            replies[seed], _ = c.request({"type": "generate", "id": seed, "audio": audio, "takes": 1,
                                          "seed": seed, "emotion": "happy"})
            times[seed] = (t, time.monotonic())

    threads = [threading.Thread(target=one, args=(s,)) for s in (1, 2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(320)
    assert all(replies[s]["type"] == "result" for s in (1, 2)), replies
    (a0, a1), (b0, b1) = times[1], times[2]
    assert max(a0, b0) < min(a1, b1)  # the two requests were in flight together
    # the cluster's take is the take `flowvq generate` makes for the same seed
    from flowvq.cli import main as cli
    from flowvq_shared.takes import Take

    (tmp_path / "a.wav").write_bytes(audio)
    assert cli(["generate", str(tmp_path / "a.wav"), "--emotion", "happy", "--seed", "2", "-o",
                str(tmp_path / "local"), "-q"]) == 0
    local = Take.load(tmp_path / "local" / "take_1.npz")
    remote = Take.from_wire(replies[2]["takes"][0])
    assert float(np.abs(local.expression - remote.expression).max()) <= 1e-5
    assert remote.provenance() == local.provenance()


def test_cancel_stops_the_ray_task(cluster_server, speech_wav):
    server, _ = cluster_server
    audio = _speech(speech_wav, 120.0)  # minutes of sampling on this machine if not stopped
    with Client(server.host, server.port, timeout=300) as c:
        c.send({"type": "generate", "id": "long", "audio": audio, "takes": 4, "seed": 1})
        while True:  # wait until it runs on the cluster
            msg = c.recv()
            assert msg["type"] == "progress", msg
            if "on the cluster" in msg["stage"] and "generating" in msg["stage"]:
                break
        t = time.monotonic()
        c.send({"type": "cancel", "id": "long"})
        while (msg := c.recv())["type"] == "progress":
            pass
        assert msg["type"] == "error" and msg["code"] == "cancelled", msg
        assert msg["message"] == "cancelled"  # the worker stopped (else the message says it did not)
        assert time.monotonic() - t < 30
        # the workers are free again: a short line comes back
        reply, _ = c.request({"type": "generate", "id": "short", "audio": _speech(speech_wav, 2.0), "seed": 3})
        assert reply["type"] == "result", reply
