"""Shared fixtures: where the real data lives, and a real backend server on 127.0.0.1."""
from __future__ import annotations

import os
import select
import subprocess
import sys
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
    """`flowvq serve --port 0` as a subprocess; the port comes from its first stdout line."""

    def __init__(self, *extra: str):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([FLOWVQ, "serve", "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)  # never wait forever
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.host, port = line[len("listening on "):].rsplit(":", 1)
        self.port = int(port)

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
