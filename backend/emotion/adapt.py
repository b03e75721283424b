"""Real-face emotions written into an FCG's class-conditional parameters.

Each learned emotion class becomes the speech class (talking: the corpus's ordinary speech) plus its
real offset, and neutral (the real clips' reference) becomes the speech class itself: the emotion
encoder's input column, every step's multi-actnorm row and the mixture component's mean are the
speech class's, and the first step's actnorm bias (the one that sees the expression itself, data ->
latent: y = (x + b_e) * s_e) is the speech class's minus the offset, and the class's display (the
offset) is what the flow reads its own past frames against. So a take with emotion e is exactly
the talking take plus e's real offset (the same speech, the same noise), intensity scales it, keys
blend it per frame inside the flow, and the lips stay the talking class's. The audio path, the
talking class and PoseFlow are not touched."""
from __future__ import annotations

import numpy as np
import torch

from flowvq_shared.channels import CHANNEL_INDEX, EMOTIONS, SPEECH_ARTICULATORS

from .real import REFERENCE, RealOffsets

METHOD = "speech class + real offset in the first multi-actnorm (backend/emotion/adapt.py)"
# the class whose speech every learned class keeps: the corpus's ordinary talking (its best lip-sync);
# neutral, the real clips' reference, becomes exactly it (display 0)
SPEECH_CLASS = "talking"


ARTICULATORS = np.array([CHANNEL_INDEX[n] for n in SPEECH_ARTICULATORS])


def shown_offset(offset: np.ndarray) -> np.ndarray:
    """The part of a real offset a take shows: on the speech articulators (jaw, lips) only what the
    emotion adds. Less than the actor's neutral there would push a talking mouth under the rig's 0 and
    cut its speech (a dead zone in jawOpen, lipsPart, mouthLowerDown...); it is left out."""
    out = np.asarray(offset, np.float32).copy()
    out[ARTICULATORS] = np.maximum(out[ARTICULATORS], 0.0)
    return out


@torch.no_grad()
def adapt(model, offsets: RealOffsets, meta: dict) -> dict:
    """Rewrite `model`'s neutral and learned emotion classes in place; -> the meta entry that records it.
    Idempotent: the data range is widened from the base checkpoint's range, recorded the first time."""
    r = EMOTIONS.index(SPEECH_CLASS)
    prev = meta.get("real_emotions") or {}
    base_hi = torch.tensor(prev["base_exp_hi"]) if "base_exp_hi" in prev else model.exp_hi.detach().clone()
    enc = model.emotion[0]  # Linear(n_emotions -> f_e): column e is class e's input
    steps = model.exp.flow.steps
    lat_rows = torch.nonzero(model.latent_emotion == r).flatten()
    grow = torch.zeros_like(base_hi)
    shown = {REFERENCE: np.zeros_like(next(iter(offsets.offsets.values())))}
    shown.update({emo: shown_offset(off) for emo, off in offsets.offsets.items()})
    for emo, off in sorted(shown.items()):
        e = EMOTIONS.index(emo)
        o = torch.as_tensor(off, dtype=steps[0].actnorm.bias.dtype)
        enc.weight[:, e] = enc.weight[:, r]
        for st in steps:
            st.actnorm.bias[e] = st.actnorm.bias[r]
            st.actnorm.log_scale[e] = st.actnorm.log_scale[r]
        steps[0].actnorm.bias[e] = steps[0].actnorm.bias[r] - o
        model.display[e] = o  # the flow reads its past relative to this: the speech class's speech, unchanged
        model.exp.prior_means[e] = model.exp.prior_means[r]
        # manifold projection draws from the class's stored latents: the speech class's, in its latent space
        mine = torch.nonzero(model.latent_emotion == e).flatten()
        if len(mine) and len(lat_rows):
            model.latents[mine] = model.latents[lat_rows[torch.arange(len(mine)) % len(lat_rows)]]
        grow = torch.maximum(grow, o.clamp_min(0))
    # sampled curves are clamped to the data's range: room for the real offsets above the base range
    # (not below: rig weights do not go under 0, so a real offset below the neutral take is cut there)
    model.exp_hi.copy_(base_hi + grow)
    return {"method": METHOD, "reference": REFERENCE, "speech_class": SPEECH_CLASS, **offsets.to_meta(),
            "base_exp_hi": np.round(base_hi.numpy(), 6).tolist(),
            "base_trained_on": prev.get("base_trained_on", meta.get("trained_on", "unknown"))}
