"""The 9 emotion classes as expression offsets, dynamics and a speaking style.

Offsets follow the facial action units the emotion literature (FACS/EMFACS) associates with each
basic emotion, written as ARKit channels and FlowVQ's extras. Dynamics: the offset breathes with
a slow random modulation and partly follows loudness (emphasis strengthens the display); brows
follow pitch accents in every class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowvq_shared.channels import CHANNEL_INDEX, EMOTIONS, N_EXPRESSION


def _both(name: str, value: float) -> dict[str, float]:
    return {f"{name}Left": value, f"{name}Right": value}


@dataclass(frozen=True)
class EmotionStyle:
    offsets: dict[str, float]  # static display at intensity 1
    loud_gain: float = 0.2  # share of the display that grows with loudness
    brow_accent: float = 0.12  # browInnerUp/OuterUp rise on pitch peaks
    articulation: float = 1.0  # scales mouth shapes (hyper/hypo articulation)
    blinks_per_min: float = 17.0
    head_scale: float = 1.0  # head motion amplitude
    head_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # mean pitch, yaw, roll (rad)
    rate: float = 1.0  # speaking-rate multiplier
    pitch: int = 0  # espeak pitch offset
    pitch_range: int = 0  # espeak pitch-range offset
    intensity: tuple[float, float] = (0.6, 1.3)  # per-utterance intensity range
    mirror: bool = False  # one-sided display: the side is drawn per utterance


STYLES: dict[str, EmotionStyle] = {
    "neutral": EmotionStyle(offsets={"browInnerUp": 0.02}, loud_gain=0.0, brow_accent=0.06,
                            articulation=0.95, blinks_per_min=16, head_scale=0.7,
                            intensity=(0.5, 1.0)),
    "talking": EmotionStyle(offsets={**_both("mouthSmile", 0.08), "browInnerUp": 0.04,
                                     **_both("cheekSquint", 0.03)},
                            loud_gain=0.5, brow_accent=0.16, blinks_per_min=18, head_scale=1.1),
    "happy": EmotionStyle(offsets={**_both("mouthSmile", 0.55), **_both("cheekSquint", 0.35),
                                   **_both("cheekRaise", 0.45), **_both("eyeSquint", 0.20),
                                   **_both("mouthDimple", 0.15), "browInnerUp": 0.05},
                          loud_gain=0.3, brow_accent=0.14, articulation=1.05, blinks_per_min=16,
                          head_scale=1.2, head_offset=(-0.03, 0.0, 0.02), rate=1.05, pitch=10,
                          pitch_range=15),
    "sad": EmotionStyle(offsets={"browInnerUp": 0.55, **_both("mouthFrown", 0.40), "chinRaise": 0.35,
                                 "browKnit": 0.25, **_both("eyeLookDown", 0.15),
                                 "mouthShrugLower": 0.20, **_both("mouthPress", 0.10),
                                 **_both("nasolabialDeepen", 0.10)},
                        loud_gain=0.1, brow_accent=0.08, articulation=0.8, blinks_per_min=15,
                        head_scale=0.6, head_offset=(0.08, 0.0, 0.0), rate=0.85, pitch=-10,
                        pitch_range=-20),
    "angry": EmotionStyle(offsets={**_both("browDown", 0.60), "browKnit": 0.50, "lipsTighten": 0.45,
                                   **_both("noseSneer", 0.30), **_both("mouthPress", 0.25),
                                   **_both("eyeSquint", 0.30), **_both("mouthUpperUp", 0.10),
                                   "jawForward": 0.10},
                          loud_gain=0.4, brow_accent=0.04, articulation=1.15, blinks_per_min=14,
                          head_scale=1.25, head_offset=(0.03, 0.0, 0.0), rate=1.1, pitch=-5,
                          pitch_range=10),
    "surprised": EmotionStyle(offsets={**_both("eyeWide", 0.60), "browInnerUp": 0.55,
                                       **_both("browOuterUp", 0.60), "jawOpen": 0.12,
                                       "mouthFunnel": 0.05},
                              loud_gain=0.3, brow_accent=0.10, articulation=1.2, blinks_per_min=9,
                              head_scale=1.1, head_offset=(-0.05, 0.0, 0.0), pitch=15, pitch_range=25),
    "fear": EmotionStyle(offsets={**_both("eyeWide", 0.50), "browInnerUp": 0.50, "browKnit": 0.40,
                                  **_both("mouthStretch", 0.35), "neckTighten": 0.45,
                                  **_both("browOuterUp", 0.20), **_both("mouthLowerDown", 0.10)},
                         loud_gain=0.2, brow_accent=0.06, articulation=1.05, blinks_per_min=26,
                         head_scale=0.9, head_offset=(0.02, 0.0, 0.0), rate=1.1, pitch=12,
                         pitch_range=-5),
    "disgusted": EmotionStyle(offsets={**_both("noseSneer", 0.55), **_both("mouthUpperUp", 0.45),
                                       **_both("browDown", 0.35), **_both("eyeSquint", 0.35),
                                       **_both("cheekSquint", 0.25), **_both("mouthFrown", 0.20),
                                       **_both("nasolabialDeepen", 0.30), "lipsTighten": 0.10},
                              loud_gain=0.3, brow_accent=0.05, articulation=0.95, blinks_per_min=18,
                              head_scale=1.0, head_offset=(-0.04, 0.03, 0.0), rate=0.95, pitch=-5),
    "contempt": EmotionStyle(offsets={"mouthSmileLeft": 0.40, "mouthDimpleLeft": 0.35,
                                      "nasolabialDeepenLeft": 0.25, "mouthPressLeft": 0.10,
                                      **_both("eyeSquint", 0.10), "mouthLeft": 0.10},
                             loud_gain=0.2, brow_accent=0.08, articulation=0.9, blinks_per_min=15,
                             head_scale=0.9, head_offset=(-0.04, 0.02, 0.04), rate=0.95,
                             mirror=True),
}
assert set(STYLES) == set(EMOTIONS)


def _mirror_name(name: str) -> str:
    if name.endswith("Left"):
        return name[:-4] + "Right"
    if name.endswith("Right"):
        return name[:-5] + "Left"
    return {"mouthLeft": "mouthRight", "mouthRight": "mouthLeft"}.get(name, name)


def offset_vector(style: EmotionStyle, mirrored: bool, jitter: np.ndarray) -> np.ndarray:
    """(64,) display at intensity 1, with a per-channel factor `jitter` (64,) for individuality."""
    v = np.zeros(N_EXPRESSION)
    for name, value in style.offsets.items():
        v[CHANNEL_INDEX[_mirror_name(name) if mirrored else name]] = value
    return v * jitter


def ou_process(rng: np.random.Generator, n: int, dt: float, tau: float, sigma: float) -> np.ndarray:
    """Ornstein-Uhlenbeck samples (stationary std `sigma`, correlation time `tau`)."""
    a = np.exp(-dt / tau)
    noise = rng.normal(0.0, sigma * np.sqrt(1 - a * a), n)
    out = np.empty(n)
    x = rng.normal(0.0, sigma)
    for i in range(n):
        x = a * x + noise[i]
        out[i] = x
    return out
