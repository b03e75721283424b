"""Mouth shapes per viseme class in ARKit terms, blended by Cohen-Massaro coarticulation.

Each phone contributes its class's target with a dominance that plateaus over the phone and
falls off exponentially, faster after it (carry-over) than before it (anticipation). Every
dominance is centred `lead` seconds before the sound: real lips move ~100-200 ms ahead of the
acoustics (the mouth opens before the vowel's energy, closes before the plosive burst).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowvq_shared.channels import CHANNEL_INDEX, N_EXPRESSION

from .phonemes import SILENCE


def _both(name: str, value: float) -> dict[str, float]:
    """Left/right pair of one ARKit shape at the same weight."""
    return {f"{name}Left": value, f"{name}Right": value}


# Target weights (0..1) per viseme class; unnamed channels stay at rest (0). The jawOpen values
# are half-way between hand-set ones and a fit to real lip gaps (docs/corpus.md, section 9).
TARGETS: dict[str, dict[str, float]] = {
    SILENCE: {"jawOpen": 0.08},  # lips slightly apart at rest, as real pauses measure
    # lips sealed and pressed, jaw nearly shut: P B M
    "PBM": {"jawOpen": 0.05, **_both("mouthPress", 0.55),
            "mouthRollLower": 0.25, "mouthRollUpper": 0.15},
    # lower lip tucked under the upper teeth: F V
    "FV": {"jawOpen": 0.15, "lipBiteLower": 0.75, **_both("mouthUpperUp", 0.20), "mouthRollLower": 0.30},
    # tongue between the teeth: TH DH
    "TH": {"jawOpen": 0.20, "tongueBetweenTeeth": 0.80, "lipsPart": 0.30},
    # tongue tip up on the ridge: T D N L
    "TDNL": {"jawOpen": 0.26, "tongueUp": 0.75, "lipsPart": 0.35, **_both("mouthStretch", 0.10)},
    # teeth nearly together, lips apart and spread: S Z
    "SZ": {"jawOpen": 0.13, "lipsPart": 0.45, **_both("mouthStretch", 0.30), **_both("mouthSmile", 0.10)},
    # lips flared forward: SH ZH CH JH
    "SH": {"jawOpen": 0.12, "mouthFunnel": 0.55, "mouthPucker": 0.35, "lipsPart": 0.30,
           "mouthShrugUpper": 0.20},
    # back of the tongue; lips follow the neighbours: K G NG H
    "KGH": {"jawOpen": 0.39, "lipsPart": 0.30},
    "R": {"jawOpen": 0.09, "mouthFunnel": 0.35, "mouthPucker": 0.40, "lipsPart": 0.20},
    "W": {"jawOpen": 0.03, "mouthPucker": 0.85, "mouthFunnel": 0.45},
    "Y": {"jawOpen": 0.15, **_both("mouthStretch", 0.25), "tongueUp": 0.35, "lipsPart": 0.30},
    # open vowels drop the jaw: AA (father), AE (cat), AO (thought)
    "AA": {"jawOpen": 0.45, **_both("mouthLowerDown", 0.35), **_both("mouthUpperUp", 0.12), "lipsPart": 0.20},
    "AE": {"jawOpen": 0.47, **_both("mouthStretch", 0.30), **_both("mouthLowerDown", 0.35),
           **_both("mouthUpperUp", 0.20)},
    "AO": {"jawOpen": 0.27, "mouthFunnel": 0.45, "mouthPucker": 0.20, **_both("mouthLowerDown", 0.30)},
    # mid and reduced vowels
    "EH": {"jawOpen": 0.44, **_both("mouthStretch", 0.30), **_both("mouthLowerDown", 0.25)},
    "AX": {"jawOpen": 0.30, "lipsPart": 0.30, **_both("mouthLowerDown", 0.10)},
    "ER": {"jawOpen": 0.17, "mouthFunnel": 0.30, "mouthPucker": 0.25, "lipsPart": 0.30},
    # close front vowels spread the lips: IY IH
    "IY": {"jawOpen": 0.26, **_both("mouthStretch", 0.45), **_both("mouthSmile", 0.18), "lipsPart": 0.45},
    # rounded vowels pucker: UW UH OW
    "UW": {"jawOpen": 0.10, "mouthPucker": 0.75, "mouthFunnel": 0.50},
    "OW": {"jawOpen": 0.21, "mouthFunnel": 0.60, "mouthPucker": 0.40, **_both("mouthLowerDown", 0.20)},
}

# Dominance strength per class and the channels it controls firmly (x KEY_GAIN there): a
# bilabial must seal the lips whatever its neighbours do, a K lets the lips coarticulate freely.
DOMINANCE: dict[str, tuple[float, tuple[str, ...]]] = {
    SILENCE: (1.0, ("jawOpen",)),
    "PBM": (1.0, ("mouthPressLeft", "mouthPressRight", "jawOpen", "mouthRollLower")),
    "FV": (0.9, ("lipBiteLower", "jawOpen")),
    "TH": (0.8, ("tongueBetweenTeeth",)),
    "TDNL": (0.5, ("tongueUp",)),
    "SZ": (0.7, ("jawOpen", "lipsPart")),
    "SH": (0.8, ("mouthFunnel", "mouthPucker")),
    "KGH": (0.25, ()),
    "R": (0.6, ("mouthPucker", "mouthFunnel")),
    "W": (0.9, ("mouthPucker", "mouthFunnel")),
    "Y": (0.5, ()),
    "AA": (0.8, ("jawOpen",)), "AE": (0.8, ("jawOpen",)), "AO": (0.8, ("jawOpen", "mouthFunnel")),
    "EH": (0.7, ("jawOpen",)), "AX": (0.35, ()), "ER": (0.5, ()),
    "IY": (0.7, ("mouthStretchLeft", "mouthStretchRight")),
    "UW": (0.8, ("mouthPucker", "mouthFunnel")), "OW": (0.8, ("mouthFunnel", "jawOpen")),
}
KEY_GAIN = 3.0
# Lip seal: 1 where the lips must meet. mouthClose is then seal x jawOpen, ARKit's convention
# for "lips closed whatever the jaw does", so a bilabial seals even when coarticulation
# leaves the jaw partly open.
SEAL = {"PBM": 1.0}
VOWELS = frozenset({"AA", "AE", "AO", "EH", "AX", "ER", "IY", "UW", "OW"})


@dataclass(frozen=True)
class Coarticulation:
    lead: float = 0.13  # s the articulation runs ahead of the sound
    anticipation: float = 0.035  # s, e-folding width of the dominance before a phone
    carryover: float = 0.028  # s, after it
    plateau: float = 0.6  # share of the phone over which its dominance is flat
    strength: float = 1.0  # hypo (<1) / hyper (>1) articulation
    smoothing: float = 0.018  # s, Gaussian: muscle and tissue low-pass


def _matrices() -> tuple[list[str], np.ndarray, np.ndarray]:
    classes = list(TARGETS)
    target = np.zeros((len(classes), N_EXPRESSION + 1))  # last column: the lip seal
    dom = np.zeros((len(classes), N_EXPRESSION + 1))
    for k, name in enumerate(classes):
        for ch, v in TARGETS[name].items():
            target[k, CHANNEL_INDEX[ch]] = v
        alpha, keys = DOMINANCE[name]
        dom[k] = alpha
        for ch in keys:
            dom[k, CHANNEL_INDEX[ch]] = alpha * KEY_GAIN
        target[k, -1] = SEAL.get(name, 0.0)
        dom[k, -1] = alpha * (KEY_GAIN if name in SEAL else 1.0)
    return classes, target, dom


_CLASSES, _TARGET, _DOM = _matrices()
_CLASS_INDEX = {c: i for i, c in enumerate(_CLASSES)}
MOUTH_CHANNELS = np.flatnonzero(np.abs(_TARGET[:, :-1]).sum(0) > 0)  # channels speech drives


def articulate(segments: list[tuple[str, float, float]], times: np.ndarray, params: Coarticulation,
               gains: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Viseme segments [(class, start s, end s)] -> (mouth curves (T, 64), lip seal (T,)).

    `gains` (one per segment) scales each segment's deviation from rest, e.g. louder
    syllables open wider.
    """
    dt = 0.005
    fine = np.arange(0.0, float(times[-1]) + 0.5, dt)
    num = np.zeros((fine.size, N_EXPRESSION + 1))
    den = np.full((fine.size, N_EXPRESSION + 1), 1e-3)  # a faint pull to rest where nothing speaks
    if gains is None:
        gains = np.ones(len(segments))
    for (name, start, end), gain in zip(segments, gains):
        k = _CLASS_INDEX[name]
        centre = 0.5 * (start + end) - params.lead
        half = 0.5 * params.plateau * max(end - start, 0.0)
        before = np.clip((centre - half) - fine, 0.0, None)
        after = np.clip(fine - (centre + half), 0.0, None)
        shape = np.exp(-before / params.anticipation - after / params.carryover)
        d = shape[:, None] * _DOM[k][None, :]
        scale = np.full(N_EXPRESSION + 1, params.strength * gain)
        scale[-1] = 1.0  # a seal is all or nothing
        num += d * (_TARGET[k] * scale)[None, :]
        den += d
    curves = num / den
    if params.smoothing > 0:
        from scipy.ndimage import gaussian_filter1d

        curves = gaussian_filter1d(curves, params.smoothing / dt, axis=0, mode="nearest")
    out = np.empty((times.size, N_EXPRESSION + 1))
    for c in range(N_EXPRESSION + 1):
        out[:, c] = np.interp(times, fine, curves[:, c])
    return out[:, :-1], np.clip(out[:, -1], 0.0, 1.0)


def seal_lips(expression: np.ndarray, seal: np.ndarray) -> None:
    """mouthClose = seal x jawOpen, in place (after every other jaw contribution is added)."""
    jaw, close = CHANNEL_INDEX["jawOpen"], CHANNEL_INDEX["mouthClose"]
    expression[:, close] = seal * expression[:, jaw]
