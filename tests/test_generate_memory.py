"""A long-running server must not grow with every generate (the soak test measures RSS too)."""
from __future__ import annotations

import numpy as np
import torch

from flowvq.audio import load_audio
from flowvq.fcg import load_generator


def test_generate_leaves_no_traced_functions_behind(speech_wav):
    gen = load_generator()
    audio = load_audio(speech_wav).samples
    for seed in range(2):
        exp, pose = gen.generate(audio, n_takes=2, seed=seed)[0]
        assert np.isfinite(exp).all()
    # TorchScript keeps every trace in a global compilation unit unless dropped: ~40 MB a call
    assert torch.jit._state._python_cu.get_functions() == []
