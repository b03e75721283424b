"""Which bank frame gives each dubbed frame its mouth: the nearest mouth shapes, chosen together.

A Viterbi pass over the K nearest bank frames of every wanted shape: the cost is the shape
distance, plus a switch cost unless the next choice is the bank frame filmed right after the last
one (a real run of the actor's mouth plays on) or the same frame held. Switching less keeps teeth
and tongue from flickering; the cost is in the same units as the shapes (canonical eye distance)."""
from __future__ import annotations

import numpy as np

K = 16
SWITCH = 0.02 ** 2 * 25  # a switch costs what a 2%-of-eye-distance error costs on every lip point
HOLD = 0.3 * SWITCH  # holding one frame is cheaper than a jump, dearer than playing on


def choose(features: np.ndarray, bank_features: np.ndarray, successor: np.ndarray,
           valid: np.ndarray | None = None, k: int = K, switch: float = SWITCH) -> np.ndarray:
    """(T,F) wanted shapes -> (T,) bank indices (-1 where not valid)."""
    t = len(features)
    out = np.full(t, -1, np.int64)
    valid = np.ones(t, bool) if valid is None else np.asarray(valid, bool)
    k = min(k, len(bank_features))
    bf = bank_features.astype(np.float32)
    bn = (bf * bf).sum(1)
    runs = []
    start = None
    for i in range(t + 1):  # each run of valid frames is chosen on its own
        if i < t and valid[i]:
            start = i if start is None else start
        elif start is not None:
            runs.append((start, i))
            start = None
    for a, b in runs:
        f = features[a:b].astype(np.float32)
        d = np.maximum((f * f).sum(1)[:, None] + bn[None, :] - 2.0 * f @ bf.T, 0.0)  # (n, N)
        cand = np.argpartition(d, k - 1, axis=1)[:, :k]
        unary = np.take_along_axis(d, cand, 1)
        n = b - a
        cost = unary[0].copy()
        back = np.zeros((n, k), np.int64)
        for i in range(1, n):
            prev, cur = cand[i - 1], cand[i]
            trans = np.full((k, k), switch, np.float32)
            trans[prev[:, None] == cur[None, :]] = HOLD * switch / SWITCH
            trans[successor[prev][:, None] == cur[None, :]] = 0.0
            total = cost[:, None] + trans
            back[i] = total.argmin(0)
            cost = total.min(0) + unary[i]
        j = int(cost.argmin())
        for i in range(n - 1, -1, -1):
            out[a + i] = cand[i, j]
            j = back[i, j]
    return out
