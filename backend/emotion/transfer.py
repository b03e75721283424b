"""Emotion transfer from a reference face, read through the learned real emotions.

The reference's tracked expression minus the learned persons' neutral mean is fitted as a non-negative
mix of the real emotion offsets (NNLS); the take is then sampled with that mix of classes (the same
per-class blend as keys: displays, actnorm, prior), so it shows the reference's emotion at the
reference's strength, not the reference's face shape: a sad portrait's own mouth corners or a
tracker's reading of one person's build do not become a half smile."""
from __future__ import annotations

import numpy as np

from flowvq_shared.channels import EMOTIONS, INTENSITY_RANGE

from .real import REFERENCE, RealOffsets


def reference_mix(reference: np.ndarray, offsets: RealOffsets) -> tuple[np.ndarray, dict[str, float]]:
    """-> class weights (n_emotions,) summing to 1 (neutral takes the rest, negative when the mix is
    stronger than 1: displays blend linearly) and the fitted emotion weights by name."""
    from scipy.optimize import nnls

    names = sorted(offsets.offsets)
    basis = np.stack([offsets.offsets[e] for e in names], 1).astype(np.float64)  # (64, k)
    w, _ = nnls(basis, np.asarray(reference, np.float64) - offsets.neutral)
    if w.sum() > INTENSITY_RANGE[1]:
        w *= INTENSITY_RANGE[1] / w.sum()
    out = np.zeros(len(EMOTIONS), np.float32)
    for e, v in zip(names, w):
        out[EMOTIONS.index(e)] = v
    out[EMOTIONS.index(REFERENCE)] = 1.0 - float(w.sum())
    return out, {e: round(float(v), 4) for e, v in zip(names, w)}
