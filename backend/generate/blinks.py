"""Blinks for generated takes: the corpus's own blink process, drawn per take from its seed.

The flow, sampled at the scale that keeps the lips in sync, never starts a blink: in its training
data a blink is a rare event that the audio does not predict, and a short CPU training run leaves
that tail of the latent distribution unreachable (docs/fcg.md, "Blinks"). So each take draws its
blink onsets from the process the corpus was built with (the emotion's rate, three times likelier
in pauses), laid over the sampled lids after sampling. Not in the autoregressive context: the
corpus's blinks are independent of the rest of the face, and a blink fed back as context nudged
the mouth (median lip-sync 0.434 -> 0.425 on the real clips). Not part of the paper;
`blinks=False` turns it off.
"""
from __future__ import annotations

import zlib

import numpy as np
from scipy.ndimage import binary_opening

from flowvq_shared.channels import CHANNEL_INDEX, EMOTIONS

from ..motion.emotion import STYLES
from ..motion.eyes import blink_curves, blink_times

LID_CHANNELS = (CHANNEL_INDEX["eyeBlinkLeft"], CHANNEL_INDEX["eyeBlinkRight"])
PAUSE_DB = 30.0  # frames this far below the clip's loud speech count as pauses
MIN_PAUSE_S = 0.15
BLINK_S = 0.35  # a blink's length, close to open: one starting this long before a clear window reaches it


def pauses(audio: np.ndarray, n_frames: int, fps: float, sample_rate: int = 16000) -> np.ndarray:
    """(T,) True where the speaker pauses: log-RMS 30 dB under the clip's loud frames for >= 150 ms."""
    energy = np.r_[0.0, np.cumsum(np.square(audio, dtype=np.float64))]
    edges = np.minimum(np.round(np.arange(n_frames + 1) * sample_rate / fps).astype(int), energy.size - 1)
    rms = np.sqrt((energy[edges[1:]] - energy[edges[:-1]]) / np.maximum(np.diff(edges), 1))
    db = 20 * np.log10(rms + 1e-8)
    quiet = db < np.percentile(db, 95) - PAUSE_DB
    # an opening keeps exactly the quiet runs at least MIN_PAUSE_S long
    return binary_opening(quiet, np.ones(max(1, int(round(MIN_PAUSE_S * fps))), bool))


def blink_lids(rng: np.random.Generator, emotion: int, n_frames: int, fps: float,
               pause_mask: np.ndarray, clear: tuple = ()) -> np.ndarray:
    """(T, 2) eyelid closure (left, right) for one take, 0 between blinks."""
    rate = STYLES[EMOTIONS[emotion]].blinks_per_min * rng.uniform(0.7, 1.3)
    onsets = blink_times(rng, n_frames / fps, rate, pause_mask, fps)
    # a blink (~0.3 s) inside an emotion's change would hide it or read as a twitch of the change
    onsets = [t for t in onsets if not any(a - BLINK_S <= t <= b for a, b in clear)]
    return blink_curves(rng, onsets, np.arange(n_frames) / fps).astype(np.float32)


def take_lids(audio: np.ndarray, emotion: int, n_frames: int, fps: float, seed: int,
              n_takes: int, clear: tuple = ()) -> np.ndarray:
    """(B, T, 2) lids for takes 0..B-1. Take k's blinks depend only on (seed, k) and the audio: the
    same request gives the same blinks, and two lines generated with the same seed do not blink in step.
    clear: (start, end) seconds where no blink may fall (an emotion key's change)."""
    mask = pauses(audio, n_frames, fps)
    audio_key = zlib.crc32(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    return np.stack([blink_lids(np.random.default_rng([seed, k, 0xB11, audio_key]), emotion, n_frames, fps, mask,
                                clear) for k in range(n_takes)])
