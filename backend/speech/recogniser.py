"""PhoneRecogniser: the words and phones pocketsphinx hears in a line, off the caller's thread, cached.

Recognition runs in one helper process per recogniser (`python -m flowvq.speech.recogniser_helper`),
started on first use, so it overlaps the flow's sampling on the other core (pocketsphinx holds the GIL:
a thread would not overlap). A plain subprocess, not multiprocessing: spawn would re-run the caller's
main script. Results are cached by the audio's bytes: pressing Generate again on the same line does not
pay for recognising it again. A dead or missing helper costs the guidance, never the take.
"""
from __future__ import annotations

import atexit
import hashlib
import json
import struct
import subprocess
import sys
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .align import to_pcm

Phones = list[tuple[str, float, float]]
MIN_SECONDS = 1.0  # shorter audio is not worth recognising
CACHE_LINES = 64  # recognised lines kept (a few kB each)


class PhoneRecogniser:
    def __init__(self, sample_rate: int = 16000, cache_lines: int = CACHE_LINES):
        self.sample_rate = sample_rate
        self._proc: subprocess.Popen | None = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="phone-recogniser")  # one line at a time
        self._lock = threading.RLock()  # re-entered: a helper that fails to start is closed under it
        self._cache: OrderedDict[str, Future] = OrderedDict()
        self._cache_lines = cache_lines
        self.error: str | None = None  # why recognition is unavailable, once the helper failed
        atexit.register(self.close)  # a no-op unless a helper is running

    def start(self, audio: np.ndarray) -> Future | None:
        """A Future of the line's phones (at once; from the cache when this line was heard before);
        None when the line is too short or recognition is unavailable."""
        if audio.shape[0] < MIN_SECONDS * self.sample_rate or self.error is not None:
            return None
        pcm = to_pcm(audio)
        key = hashlib.sha256(pcm).hexdigest()
        with self._lock:
            fut = self._cache.get(key)
            if fut is not None and not (fut.done() and fut.exception() is not None):
                self._cache.move_to_end(key)
                return fut
            fut = self._io.submit(self._round_trip, pcm)
            self._cache[key] = fut
            while len(self._cache) > self._cache_lines:
                self._cache.popitem(last=False)
            return fut

    def _helper(self) -> subprocess.Popen | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        if self.error is not None:
            return None
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", "flowvq.speech.recogniser_helper"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL)
            _ask(self._proc, to_pcm(np.zeros(1600)))  # builds the decoders: part of loading the model
            return self._proc
        except Exception as e:  # no pocketsphinx, no processes: the flow alone, and info says why
            self.error = f"phone recognition unavailable: {type(e).__name__}: {e}"
            self.close()
            return None

    def _round_trip(self, pcm: bytes) -> Phones:
        with self._lock:
            proc = self._helper()
            if proc is None:
                raise RuntimeError(self.error or "phone recognition unavailable")
            try:
                return _ask(proc, pcm)
            except Exception:  # the helper died mid-request: the next line starts a new one
                self._kill()
                raise

    def _kill(self) -> None:
        if self._proc is not None:
            try:
                self._proc.kill()
                self._proc.wait(timeout=5)
            except Exception:
                pass
            self._proc = None

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                try:
                    self._proc.stdin.close()  # EOF: the helper exits
                    self._proc.wait(timeout=5)
                except Exception:
                    self._kill()
                self._proc = None


def _ask(proc: subprocess.Popen, pcm: bytes) -> Phones:
    """One request: u64 length + PCM out; u32 length + JSON back ({"phones": [...]} or {"error": ...})."""
    proc.stdin.write(struct.pack("<Q", len(pcm)) + pcm)
    proc.stdin.flush()
    head = proc.stdout.read(4)
    if len(head) < 4:
        raise RuntimeError("the phone recogniser's helper exited")
    reply = json.loads(proc.stdout.read(struct.unpack("<I", head)[0]))
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return [(str(n), float(a), float(b)) for n, a, b in reply["phones"]]
