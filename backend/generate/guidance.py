"""Phone guidance: each take's mouth dynamics pulled toward what the phones heard in the audio say.

The flows learned audio -> mouth from synthetic voices only, and some real voices stay strangers to
them (andrew_clip_1: r 0.11). pocketsphinx's acoustic model was trained on real speech. So the words
are recognised (speech.recogniser), force-aligned to phones, and the corpus's own coarticulation model
(speech.visemes, the mouth the flows were trained on) turns the phones into mouth curves with the lead
real lips have. A share `guidance` of each take's mouth *dynamics* is replaced by those curves; the take
keeps its own mean mouth (the emotion's offsets) and everything else the flow made. Measured on the
real clips in docs/fcg.md ("Phone guidance").
"""
from __future__ import annotations

from concurrent.futures import Future

import numpy as np

from flowvq_shared.channels import CHANNEL_INDEX, N_EXPRESSION, SPEECH_ARTICULATORS

from ..speech.phonemes import to_visemes
from ..speech.visemes import Coarticulation, articulate, seal_lips

LEAD_S = 0.13  # s the articulation runs ahead of the sound: the corpus's mean lead
WAIT_S = 600  # the longest a take waits for its line's phones

GUIDED_CHANNELS = SPEECH_ARTICULATORS  # the speech articulators (shared/channels.py)
GUIDED_INDEX = np.array([CHANNEL_INDEX[n] for n in GUIDED_CHANNELS])


def phone_mouth(phones: list[tuple[str, float, float]], n_frames: int, fps: float) -> np.ndarray | None:
    """Phones -> (n_frames, 64) mouth curves from the corpus's coarticulation model (None: no phones)."""
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


def guide(takes: np.ndarray, phones: Future | None, n_frames: int, fps: float, guidance: float
          ) -> tuple[np.ndarray | None, str]:
    """-> (the takes with the recognised phones blended in, "") or (None, why nothing was blended)."""
    if phones is None:
        return None, "the line is shorter than 1 s or phone recognition is unavailable"
    try:
        heard = phones.result(timeout=WAIT_S)
    except Exception as e:  # a crashed recogniser must not lose the take: the flow's mouth stands
        return None, f"phone recognition failed: {e}"
    mouth = phone_mouth(heard, n_frames, fps) if heard else None
    if mouth is None or mouth.shape != (n_frames, N_EXPRESSION):
        return None, "no speech was recognised in the line"
    return apply_guidance(takes, mouth, guidance), ""
