"""Phone guidance: each take's mouth dynamics pulled toward what the phones heard in the audio say.

The flows learned audio -> mouth from synthetic voices only, and some real voices stay strangers to
them (andrew_clip_1: r 0.11). pocketsphinx's acoustic model was trained on real speech. So the words
are recognised, force-aligned to phones, and the corpus's own coarticulation model (corpus/visemes.py,
the mouth the flows were trained on) turns the phones into mouth curves with the lead real lips
have. A share `guidance` of each take's mouth *dynamics* is replaced by those curves; the take keeps
its own mean mouth (the emotion's offsets) and everything else the flow made. Measured on the real
clips in docs/fcg.md ("Phone guidance").

Recognition runs in one helper process per generator (phone_helper.py), started with the first
guided take, so it overlaps the flow's sampling on the second core (pocketsphinx holds the GIL: a
thread would not overlap).
"""
from __future__ import annotations

import atexit
import json
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from flowvq_shared.channels import CHANNEL_INDEX, N_EXPRESSION
from flowvq_shared.messages import PHONE_GUIDANCE as DEFAULT_GUIDANCE  # 0.5-0.8 score alike (docs/fcg.md)

LEAD_S = 0.13  # s the articulation runs ahead of the sound: the corpus's mean lead
MIN_SECONDS = 1.0  # shorter audio is not worth recognising: the flow alone

# The speech articulators the coarticulation model drives, minus the smile (an emotion channel too).
GUIDED_CHANNELS = ("jawOpen", "mouthClose", "mouthPressLeft", "mouthPressRight", "mouthRollLower",
                   "mouthRollUpper", "lipBiteLower", "mouthUpperUpLeft", "mouthUpperUpRight",
                   "tongueBetweenTeeth", "lipsPart", "tongueUp", "mouthStretchLeft", "mouthStretchRight",
                   "mouthFunnel", "mouthPucker", "mouthShrugUpper", "mouthLowerDownLeft",
                   "mouthLowerDownRight")
GUIDED_INDEX = np.array([CHANNEL_INDEX[n] for n in GUIDED_CHANNELS])


# Beams narrower than pocketsphinx's defaults (beam and pbeam 1e-48): 10 s of speech recognised and
# aligned in ~1.3 s instead of ~2.1 s, so the helper finishes before the flow's sampling; lip-sync on
# the 9 real clips: median 0.469, min 0.357 (default beams 0.495, 0.350; docs/fcg.md).
FAST_BEAMS = {"beam": 1e-44, "pbeam": 1e-44}


def decoders(sample_rate: int = 16000, fast: bool = True):
    """A fresh (recogniser, aligner) pair. Fresh every utterance: a reused pocketsphinx decoder carries
    state (cepstral mean, noise estimate...) from the previous one and hears the same words differently."""
    from pocketsphinx import Decoder

    return (Decoder(samprate=sample_rate, loglevel="FATAL", **(FAST_BEAMS if fast else {})),
            Decoder(samprate=sample_rate, bestpath=False, loglevel="FATAL"))


def recognise_phones(pcm: bytes, sample_rate: int = 16000, fast: bool = True) -> list[tuple[str, float, float]]:
    """16-bit mono PCM -> [(ARPAbet phone, start s, end s)]; [] when no word is heard."""
    return recognise(pcm, sample_rate, decoders(sample_rate, fast))[1]


def recognise(pcm: bytes, sample_rate: int = 16000, pair=None) -> tuple[str, list[tuple[str, float, float]]]:
    """16-bit mono PCM -> (recognised words, [(ARPAbet phone, start s, end s)]).

    pocketsphinx's US-English model: recognise the words with its language model, then force-align
    that transcript to get phone boundaries. `pair`: fresh decoders() (default: full beams)."""
    rec, ali = pair if pair is not None else decoders(sample_rate, fast=False)
    rec.start_utt()
    rec.process_raw(pcm, full_utt=True)
    rec.end_utt()
    hyp = rec.hyp().hypstr.strip() if rec.hyp() is not None else ""
    if not hyp:
        return "", []
    ali.set_align_text(hyp)
    for first in (True, False):  # pass 1 aligns the words, pass 2 (after set_alignment) their phones
        ali.start_utt()
        ali.process_raw(pcm, full_utt=True)
        ali.end_utt()
        if first:
            ali.set_alignment()
    return hyp, [(ph.name, ph.start / 100.0, (ph.start + ph.duration) / 100.0)
                 for word in ali.get_alignment() for ph in word]


def to_pcm(audio: np.ndarray) -> bytes:
    return (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2").tobytes()


def phone_mouth(phones: list[tuple[str, float, float]], n_frames: int, fps: float) -> np.ndarray | None:
    """Phones -> (n_frames, 64) mouth curves from the corpus's coarticulation model (None: no phones)."""
    from ..corpus.phonemes import to_visemes
    from ..corpus.visemes import Coarticulation, articulate, seal_lips

    segments = to_visemes(phones, "arpabet")
    if not any(name != "sil" for name, _, _ in segments):
        return None
    exp, seal = articulate(segments, np.arange(n_frames) / fps, Coarticulation(lead=LEAD_S))
    seal_lips(exp, seal)
    return exp[:n_frames].astype(np.float32)


def apply_guidance(takes: np.ndarray, mouth: np.ndarray, guidance: float) -> np.ndarray:
    """(K, T, 64) takes, (T, 64) phone mouth -> takes whose guided channels keep their own mean and
    take `guidance` of their dynamics from the phone mouth (deviations from its own mean)."""
    out = np.array(takes, dtype=np.float32, copy=True)
    if guidance <= 0:
        return out
    idx = GUIDED_INDEX
    flow = out[..., idx]
    phone = mouth[None, :, idx]
    flow_mean = flow.mean(axis=1, keepdims=True)
    mixed = flow_mean + (1 - guidance) * (flow - flow_mean) + guidance * (phone - phone.mean(axis=1, keepdims=True))
    out[..., idx] = np.clip(mixed, 0.0, 1.0)
    return out


class PhoneGuide:
    """One helper process (`python -m flowvq.fcg.phone_helper`) fed over pipes: `start` sends the
    audio and returns a Future at once; a thread waits on the pipe (no GIL held) while the flow
    samples. A plain subprocess, not multiprocessing: spawn would re-run the caller's main script."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="phone-guide")  # one request at a time
        self._lock = threading.RLock()  # re-entered: a helper that fails to start is closed under it
        self.error: str | None = None  # why guidance is unavailable, once the helper failed
        atexit.register(self.close)  # a no-op unless a helper is running

    def _helper(self) -> subprocess.Popen | None:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        if self.error is not None:
            return None
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", "flowvq.fcg.phone_helper"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL)
            _ask(self._proc, to_pcm(np.zeros(1600)))  # builds the decoders: part of loading the model
            return self._proc
        except Exception as e:  # no pocketsphinx, no processes: the flow alone, and info says why
            self.error = f"phone guidance unavailable: {type(e).__name__}: {e}"
            self.close()
            return None

    def _round_trip(self, pcm: bytes) -> list[tuple[str, float, float]]:
        with self._lock:
            proc = self._helper()
            if proc is None:
                return []
            try:
                return _ask(proc, pcm)
            except Exception:  # the helper died mid-request: the next take starts a new one
                self._kill()
                raise

    def start(self, audio: np.ndarray) -> Future | None:
        if audio.shape[0] < MIN_SECONDS * 16000 or self.error is not None:
            return None
        return self._io.submit(self._round_trip, to_pcm(audio))

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


def _ask(proc: subprocess.Popen, pcm: bytes) -> list[tuple[str, float, float]]:
    """One request: u64 length + PCM out; u32 length + JSON back ({"phones": [...]} or {"error": ...})."""
    proc.stdin.write(struct.pack("<Q", len(pcm)) + pcm)
    proc.stdin.flush()
    head = proc.stdout.read(4)
    if len(head) < 4:
        raise RuntimeError("the phone helper exited")
    reply = json.loads(proc.stdout.read(struct.unpack("<I", head)[0]))
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return [(str(n), float(a), float(b)) for n, a, b in reply["phones"]]


def guide_takes(takes: np.ndarray, future: Future, n_frames: int, fps: float, guidance: float) -> np.ndarray | None:
    """The takes with the recognised phones blended in; None when there is nothing to blend."""
    try:
        phones = future.result(timeout=600)
    except Exception:  # a crashed helper must not lose the take: the flow's mouth stands
        return None
    mouth = phone_mouth(phones, n_frames, fps) if phones else None
    if mouth is None or mouth.shape != (n_frames, N_EXPRESSION):
        return None
    return apply_guidance(takes, mouth, guidance)
