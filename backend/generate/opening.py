"""A generated mouth's opening: the one definition (shared/channels.py's OPENING_WEIGHTS applied to
the 64 channels). Lip-sync is measured with it (evaluate/mouth.py re-exports it); the voice map moves it."""
from __future__ import annotations

import numpy as np

from flowvq_shared.channels import CHANNEL_INDEX, N_EXPRESSION, OPENING_WEIGHTS

_W = np.zeros(N_EXPRESSION)
for _name, _w in OPENING_WEIGHTS.items():
    _W[CHANNEL_INDEX[_name]] = _w


def mouth_opening(expression: np.ndarray) -> np.ndarray:
    """(T, 64) generated expression -> (T,) lip opening (arbitrary units; correlations are scale-free)."""
    return np.asarray(expression, dtype=np.float64) @ _W
