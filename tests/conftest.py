"""Shared fixtures: where the real data lives, and a real backend server on 127.0.0.1."""
from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FLOWVQ = str(Path(sys.executable).with_name("flowvq"))


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it ships beside the repo "
                    "in the development checkout only)")
    return path


class BackendProcess:
    """`flowvq serve --port 0` as a subprocess; the port comes from its `listening on` line.

    Bounded for a loaded 2-core box: the start may take START_TIMEOUT_S (the line itself comes
    before any heavy import); the server's log goes to a temporary file, never to an unread pipe
    that could fill up and block it.
    """

    START_TIMEOUT_S = 90

    def __init__(self, *extra: str):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([FLOWVQ, "serve", "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=self.log, env=env)
        line = self._read_listening_line()
        if line is None:
            self.proc.kill()
            self.proc.wait(10)
            raise RuntimeError(f"server did not start: {self.stderr_text()[-2000:]}")
        self.host, port = line[len("listening on "):].rsplit(":", 1)
        self.port = int(port)

    def _read_listening_line(self) -> str | None:
        fd, buf = self.proc.stdout.fileno(), b""
        deadline = time.monotonic() + self.START_TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break  # the server exited
            buf += chunk
            for line in buf.decode(errors="replace").splitlines(keepends=True):
                if line.startswith("listening on ") and line.endswith("\n"):
                    return line.strip()
        return None

    def stderr_text(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def backend():
    b = BackendProcess("--no-zeroconf")
    yield b
    b.stop()


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """Real speech made here by espeak-ng (installed by the Makefile), 16 kHz after loading."""
    from flowvq.demo import speak

    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    return speak("Bob bought a big blue map, and we will open every window today.", path)


@pytest.fixture(scope="session")
def portrait_png(tmp_path_factory) -> Path:
    from flowvq.demo import portrait

    return portrait(tmp_path_factory.mktemp("portrait") / "astronaut.png")
