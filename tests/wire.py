"""A blocking test client on the real protocol helpers (shared/), for talking to a real server."""
from __future__ import annotations

import io
import socket

import numpy as np
import soundfile as sf

from flowvq_shared import protocol as p


class Client:
    def __init__(self, host: str, port: int, timeout: float = 120.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.hello = p.recv_frame(self.sock)

    def send(self, msg: dict) -> None:
        p.send_frame(self.sock, msg)

    def recv(self) -> dict:
        return p.recv_frame(self.sock)

    def request(self, msg: dict) -> tuple[dict, list[dict]]:
        """Send a request; return its final reply and the progress/frame messages before it."""
        self.send(msg)
        stream = []
        while True:
            reply = self.recv()
            if reply.get("id") == msg.get("id") and reply["type"] in ("result", "error", "pong"):
                return reply, stream
            stream.append(reply)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wav_bytes(x: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV")
    return buf.getvalue()


def require(client: Client, capability: str) -> None:
    import pytest

    if capability not in client.hello["capabilities"]:
        pytest.skip(f"server cannot {capability} yet: {client.hello['not_implemented'].get(capability)}")
