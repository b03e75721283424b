"""Soak: 8 clients x 50 mixed requests against one real server on 127.0.0.1 (`make soak`).

Every valid request must be answered correctly, every bad one with an error; the server's RSS
may grow less than 10 % after warm-up; no job may be left stuck. Numbers go to
docs/robustness.md (written by this test when FLOWVQ_SOAK_REPORT is set).
"""
from __future__ import annotations

import os
import random
import struct
import threading
import time

import numpy as np
import pytest

from flowvq_shared.channels import CHANNEL_INDEX

from conftest import BackendProcess
from wire import Client

pytestmark = pytest.mark.soak

CLIENTS = 8
REQUESTS = 50
DEADLINE_S = 1500


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_soak(speech_wav, portrait_png):
    b = BackendProcess("--no-zeroconf")
    audio = speech_wav.read_bytes()
    portrait = portrait_png.read_bytes()
    exp = np.zeros((3, 64), np.float32)
    exp[:, CHANNEL_INDEX["jawOpen"]] = [0.0, 0.4, 0.8]
    pose = np.zeros((3, 6), np.float32)
    counts = {"ok": 0, "error_as_expected": 0, "cancelled": 0, "bad_frame_closed": 0}
    failures: list[str] = []
    lock = threading.Lock()
    try:
        with Client(b.host, b.port) as c:
            caps = set(c.hello["capabilities"])
            # warm-up: load every model once before the baseline RSS is taken
            if "generate" in caps:  # every batch size the mix uses, and a cancelled job
                for k in (1, 2, 3, 4):
                    reply = c.request({"type": "generate", "id": k, "audio": audio, "takes": k})[0]
                    assert reply["type"] == "result", reply
                c.send({"type": "generate", "id": 5, "audio": audio, "takes": 4})
                c.send({"type": "cancel", "id": 5})
                while c.recv()["type"] == "progress":
                    pass
            if "track" in caps:
                c.request({"type": "track", "id": 6, "image": portrait})
            if "render" in caps:
                c.request({"type": "render", "id": 7, "portrait": portrait, "expression": exp,
                           "pose": pose, "max_side": 192})
        base = rss_mb(b.proc.pid)
        kinds = ["ping", "bad_field", "unknown", "bad_frame"]
        kinds += ["generate", "generate", "cancel"] if "generate" in caps else []
        kinds += ["track"] if "track" in caps else []
        kinds += ["render"] if "render" in caps else []

        def client(seed: int):
            rng = random.Random(seed)
            c = Client(b.host, b.port)
            try:
                for i in range(REQUESTS):
                    kind = rng.choice(kinds)
                    rid = f"{seed}-{i}"
                    if kind == "bad_frame":
                        c.sock.sendall(struct.pack(">I", 4) + b"\xc1\xc1\xc1\xc1")
                        try:
                            while True:  # an error, then the server closes: expected
                                c.recv()
                        except Exception:  # noqa: BLE001
                            pass
                        c.close()
                        c = Client(b.host, b.port)
                        with lock:
                            counts["bad_frame_closed"] += 1
                        continue
                    msg = {"ping": {"type": "ping", "id": rid},
                           "bad_field": {"type": "generate", "id": rid, "audio": audio,
                                         "emotion": "bored"},
                           "unknown": {"type": "teleport", "id": rid},
                           "generate": {"type": "generate", "id": rid, "audio": audio,
                                        "takes": rng.randint(1, 3), "seed": rng.randint(0, 99),
                                        "emotion": rng.choice(["happy", "sad", "talking"])},
                           "cancel": {"type": "generate", "id": rid, "audio": audio, "takes": 4},
                           "track": {"type": "track", "id": rid, "image": portrait},
                           "render": {"type": "render", "id": rid, "portrait": portrait,
                                      "expression": exp, "pose": pose, "max_side": 192}}[kind]
                    if kind == "cancel":
                        c.send(msg)
                        c.send({"type": "cancel", "id": rid})
                        reply = c.recv()
                        while reply["type"] == "progress" or reply.get("id") != rid:
                            reply = c.recv()
                        ok = reply["type"] == "result" or reply.get("code") in ("cancelled",
                                                                                  "bad_request")
                        with lock:
                            counts["cancelled"] += 1
                    else:
                        reply, stream = c.request(msg)
                        if kind in ("ping", "generate", "track", "render"):
                            ok = reply["type"] in ("result", "pong")
                            if kind == "generate" and ok:
                                ok = len(reply["takes"]) == msg["takes"] and all(
                                    np.isfinite(t["expression"]).all() for t in reply["takes"])
                            if kind == "render" and ok:
                                ok = sum(1 for s in stream if s["type"] == "frame") == 3
                            with lock:
                                counts["ok"] += ok
                        else:
                            ok = reply["type"] == "error"
                            with lock:
                                counts["error_as_expected"] += ok
                    if not ok:
                        with lock:
                            failures.append(f"{kind}: {reply}")
            except Exception as e:  # noqa: BLE001
                with lock:
                    failures.append(f"client {seed}: {e!r}")
            finally:
                c.close()

        t0 = time.time()
        samples: list[float] = []
        done = threading.Event()

        def sample_rss():
            while not done.wait(5.0):
                samples.append(rss_mb(b.proc.pid))

        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1, DEADLINE_S - (time.time() - t0)))
        elapsed = time.time() - t0
        done.set()
        print("RSS every 5 s (MB):", " ".join(f"{x:.0f}" for x in samples))
        stuck = [t for t in threads if t.is_alive()]
        after = rss_mb(b.proc.pid)
        with Client(b.host, b.port) as c:  # still serving, nothing stuck in the worker
            assert c.request({"type": "ping", "id": "end"})[0]["type"] == "pong"
        # warm-up = models loaded + the first 5 s of the concurrent load (8 connections' buffers,
        # allocator arenas); growth is measured from there to the end
        warm = samples[0] if samples else base
        growth = (after - warm) / warm
        report = (f"| {time.strftime('%Y-%m-%d')} | {CLIENTS} x {REQUESTS} | {elapsed:.0f} s | "
                  f"{counts['ok']} | {counts['error_as_expected']} | {counts['cancelled']} | "
                  f"{counts['bad_frame_closed']} | {len(failures)} | {base:.0f} (idle) -> "
                  f"{warm:.0f} (5 s into the load) -> {after:.0f} MB: {100 * growth:+.1f} % after "
                  f"warm-up, {100 * (after - base) / base:+.1f} % from idle | "
                  f"{', '.join(sorted(caps & {'generate', 'track', 'render'}))} |")
        print(report)
        if os.environ.get("FLOWVQ_SOAK_REPORT"):
            with open(os.environ["FLOWVQ_SOAK_REPORT"], "a") as f:
                f.write(report + "\n")
        assert not stuck, f"{len(stuck)} clients stuck"
        assert not failures, failures[:5]
        assert growth < 0.10, f"RSS grew {100 * growth:.1f} % after warm-up"
    finally:
        b.stop()
