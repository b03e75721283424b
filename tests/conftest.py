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

    def __init__(self, *extra: str, env: dict | None = None):
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
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


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit PNG of width x height pixels in ~110 KB (2.7 GB once decoded to RGB):
    a decompression bomb, written in half a second without Pillow's own guard."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = (b"\0" * (1 + (width + 7) // 8)) * 1000
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(rows) for _ in range(height // 1000)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def bad_media(folder: Path) -> dict[str, Path]:
    """One file (or path) per class of bad input the entry points must refuse in one line."""
    import io

    import cv2
    import imageio_ffmpeg
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        out[name] = folder / name
        out[name].write_bytes(data)

    put("bomb.png", png_bomb())
    img = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    png = cv2.imencode(".png", img)[1].tobytes()
    jpg = cv2.imencode(".jpg", img)[1].tobytes()
    put("truncated.png", png[: len(png) // 2])
    put("truncated.jpg", jpg[: len(jpg) // 2])
    put("corrupt.png", b"\x89PNG\r\n\x1a\n" + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    put("empty.png", b"")
    out["folder.png"] = folder / "folder.png"
    out["folder.png"].mkdir(exist_ok=True)
    out["fifo.png"] = folder / "fifo.png"
    if not out["fifo.png"].exists():
        os.mkfifo(out["fifo.png"])
    out["missing.png"] = folder / "missing.png"

    t = np.arange(32000) / 16000
    speech = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, np.stack([speech] * 20, axis=1), 16000, format="WAV")
    put("20ch.wav", buf.getvalue())
    buf = io.BytesIO()
    sf.write(buf, speech, 1000, format="WAV")
    put("1khz.wav", buf.getvalue())
    out["folder.wav"] = folder / "folder.wav"
    out["folder.wav"].mkdir(exist_ok=True)
    out["fifo.wav"] = folder / "fifo.wav"
    if not out["fifo.wav"].exists():
        os.mkfifo(out["fifo.wav"])

    ff = imageio_ffmpeg.get_ffmpeg_exe()
    for name, args in (("silent_video.mp4", ["-t", "1"]), ("long.mp4", ["-t", "700"])):
        rate = "25" if name.startswith("silent") else "1"
        subprocess.run([ff, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"color=c=gray:s=64x64:r={rate}", *args, "-pix_fmt", "yuv420p",
                        str(folder / name)], check=True, timeout=120)
        out[name] = folder / name
    av = folder / "av.mp4"  # picture and sound; cut in half it loses its index (moov)
    subprocess.run([ff, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=gray:s=64x64:r=25", "-f", "lavfi", "-i", "sine=frequency=220",
                    "-t", "1", "-pix_fmt", "yuv420p", "-c:a", "aac", str(av)],
                   check=True, timeout=120)
    mp4 = av.read_bytes()
    put("truncated.mp4", mp4[: len(mp4) // 2])
    put("corrupt.mp4", rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    out["folder.mp4"] = folder / "folder.mp4"
    out["folder.mp4"].mkdir(exist_ok=True)
    return out
