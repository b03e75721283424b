"""A long-running server must not grow with every generate (the soak test measures RSS too)."""
from __future__ import annotations

import numpy as np
import torch

from flowvq.audio import load_audio
from flowvq.generate import load_generator
from flowvq_shared.settings import GenerateSettings


def _traced_functions() -> int:
    # TorchScript keeps every trace in one process-wide compilation unit (~40 MB a trace); the product
    # never touches it, this test only counts what is there
    return len(torch.jit._state._python_cu.get_functions())


def test_the_sampler_traces_once_per_model_and_keeps_it(speech_wav):
    gen = load_generator(device="cpu")
    audio = load_audio(speech_wav).samples
    before = _traced_functions()
    counts = []
    for seed, takes, emotion in ((0, 2, "talking"), (1, 1, "happy"), (2, 3, "sad")):
        out = gen.generate(audio, GenerateSettings(takes=takes, seed=seed, emotion=emotion, phone_guidance=0.0))
        assert len(out) == takes and all(np.isfinite(k.expression).all() for k in out)
        counts.append(_traced_functions())
    assert counts[0] - before <= 2 and counts[0] == counts[1] == counts[2], (before, counts)
