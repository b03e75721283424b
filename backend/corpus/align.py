"""Forced alignment with pocketsphinx: known words -> ARPAbet phone segments at 10 ms."""
from __future__ import annotations

import numpy as np

from ..errors import BadAudio


def align_phones(audio: np.ndarray, words: list[str], sample_rate: int = 16000
                 ) -> list[tuple[str, float, float]]:
    """[(ARPAbet phone, start s, end s)] for `words` spoken in `audio` (16 kHz mono float)."""
    from pocketsphinx import Decoder

    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
    # wide beams: synthetic and noisy voices fall off the default search beam
    decoder = Decoder(samprate=sample_rate, bestpath=False, loglevel="FATAL", beam=1e-80,
                      wbeam=1e-60, pbeam=1e-80)
    decoder.set_align_text(" ".join(w.lower() for w in words))
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None:
        raise BadAudio("forced alignment found no path through the words")
    decoder.set_alignment()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    phones = []
    for word in decoder.get_alignment():
        for phone in word:
            phones.append((phone.name, phone.start / 100.0, (phone.start + phone.duration) / 100.0))
    if not phones:
        raise BadAudio("forced alignment returned no phones")
    return phones
