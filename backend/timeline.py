"""The one frame-count rule of the project: T = ceil(duration * fps).

Frame t is shown at time t / fps; a trailing partial frame is kept so the curves cover all the
audio. The generator (fcg/features.py), the dataset format (training/dataset.py) and the
evaluation count frames this way. No imports: any layer may use it."""
from __future__ import annotations

import math

SAMPLE_RATE = 16000


def frame_count(n_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Frames for `n_samples` of audio at `sample_rate`: ceil(duration * fps), at least 1."""
    return max(1, int(math.ceil(n_samples / sample_rate * fps - 1e-9)))
