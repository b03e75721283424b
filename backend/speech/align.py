"""pocketsphinx, the one implementation: recognise words, force-align them to ARPAbet phones at 10 ms.

Used by phone guidance at inference (recognise with FAST_BEAMS, fcg/phone_guide.py), by the
evaluation's phone baseline (recognise, full beams) and by the starter corpus's optional
pocketsphinx timing (align_phones: known words, WIDE_BEAMS).
"""
from __future__ import annotations

import numpy as np

from ..errors import BadAudio

# Beams narrower than pocketsphinx's defaults (beam and pbeam 1e-48): 10 s of speech recognised and
# aligned in ~1.3 s instead of ~2.1 s, so the helper finishes before the flow's sampling; lip-sync on
# the 9 real clips: median 0.469, min 0.357 (default beams 0.495, 0.350; docs/fcg.md).
FAST_BEAMS = {"beam": 1e-44, "pbeam": 1e-44}
# Wide beams for aligning known words: synthetic and noisy voices fall off the default search beam.
WIDE_BEAMS = {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80}


def aligner(sample_rate: int = 16000, beams: dict | None = None):
    """A fresh forced-alignment decoder (pocketsphinx's default beams unless `beams`)."""
    from pocketsphinx import Decoder

    return Decoder(samprate=sample_rate, bestpath=False, loglevel="FATAL", **(beams or {}))


def decoders(sample_rate: int = 16000, fast: bool = True):
    """A fresh (recogniser, aligner) pair. Fresh every utterance: a reused pocketsphinx decoder carries
    state (cepstral mean, noise estimate...) from the previous one and hears the same words differently."""
    from pocketsphinx import Decoder

    return (Decoder(samprate=sample_rate, loglevel="FATAL", **(FAST_BEAMS if fast else {})),
            aligner(sample_rate))


def force_align(ali, pcm: bytes, text: str, strict: bool = False) -> list[tuple[str, float, float]]:
    """Align `text` (words) to 16-bit mono PCM with a fresh aligner() -> [(ARPAbet phone, start s, end s)].

    strict: raise BadAudio when no path through the words is found or no phone comes back."""
    ali.set_align_text(text)
    for first in (True, False):  # pass 1 aligns the words, pass 2 (after set_alignment) their phones
        ali.start_utt()
        ali.process_raw(pcm, full_utt=True)
        ali.end_utt()
        if first:
            if strict and ali.hyp() is None:
                raise BadAudio("forced alignment found no path through the words")
            ali.set_alignment()
    phones = [(ph.name, ph.start / 100.0, (ph.start + ph.duration) / 100.0)
              for word in ali.get_alignment() for ph in word]
    if strict and not phones:
        raise BadAudio("forced alignment returned no phones")
    return phones


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
    return hyp, force_align(ali, pcm, hyp)


def align_phones(audio: np.ndarray, words: list[str], sample_rate: int = 16000
                 ) -> list[tuple[str, float, float]]:
    """[(ARPAbet phone, start s, end s)] for known `words` spoken in `audio` (16 kHz mono float);
    BadAudio when the alignment fails (about half the synthetic utterances, docs/corpus.md)."""
    return force_align(aligner(sample_rate, WIDE_BEAMS), to_pcm(audio),
                       " ".join(w.lower() for w in words), strict=True)


def to_pcm(audio: np.ndarray) -> bytes:
    return (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2").tobytes()
