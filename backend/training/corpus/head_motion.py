"""Head pose (pitch, yaw, roll in radians; tx, ty, tz in model units) that follows the speech.

Nods go with loudness (emphasis), the head lifts with pitch accents, and slow random drift
(Ornstein-Uhlenbeck) keeps it alive in pauses. Amplitudes are set so the rotation std lands at
0.02-0.08 rad, the range measured on the real talking-head clips in ../shared/data.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from flowvq_shared.channels import N_POSE

from ...motion.emotion import EmotionStyle, ou_process
from .prosody import Prosody

TRANSLATION_PER_RADIAN = 0.1  # model units of head translation per radian of rotation


def head_pose(rng: np.random.Generator, pros: Prosody, fps: float, style: EmotionStyle,
              scale: float) -> np.ndarray:
    n = pros.loudness.size
    dt = 1.0 / fps
    loud = gaussian_filter1d(np.where(pros.voiced, pros.loudness, -1.0), 0.08 * fps)
    accent = gaussian_filter1d(pros.pitch, 0.1 * fps)
    s = scale * style.head_scale
    pose = np.zeros((n, N_POSE))
    nod = rng.uniform(0.010, 0.025)
    pose[:, 0] = (style.head_offset[0] + s * (nod * loud - rng.uniform(0.005, 0.015) * accent
                                              + ou_process(rng, n, dt, 2.0, 0.025)))
    pose[:, 1] = (style.head_offset[1] + s * (rng.choice([-1, 1]) * rng.uniform(0.0, 0.01) * loud
                                              + ou_process(rng, n, dt, 3.0, 0.045)))
    pose[:, 2] = (style.head_offset[2] + s * (rng.uniform(-0.01, 0.01) * accent
                                              + ou_process(rng, n, dt, 2.5, 0.025)))
    # the head turns about the neck, so rotation carries the face sideways/up a little
    pose[:, 3] = TRANSLATION_PER_RADIAN * pose[:, 1] + ou_process(rng, n, dt, 3.0, 0.002)
    pose[:, 4] = -TRANSLATION_PER_RADIAN * pose[:, 0] + ou_process(rng, n, dt, 3.0, 0.002)
    pose[:, 5] = ou_process(rng, n, dt, 4.0, 0.004)
    return pose
