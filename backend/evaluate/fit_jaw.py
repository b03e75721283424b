"""How the jaw targets of corpus version 3 were chosen: a fit of the mouth model to real lips.

`python -m flowvq.evaluate.fit_jaw` (needs ../shared/data/talking_3dmm). With the dominance model
fixed, the mouth opening is a blend of per-class values; these are regressed (ridge, per-clip
intercept) on each clip's z-scored real lip gap with the model led by 150 ms, mapped back onto
the hand-set scale, and the jaw target set half-way between the hand-set value and the fit.
It prints the leave-one-speaker-out scores and the jaw targets fitted on all clips.
It refits from the current TARGETS, so run on the version-2 table to reproduce version 3.
"""
from __future__ import annotations

import json

import numpy as np

from ..speech import visemes as V
from ..speech.phonemes import to_visemes
from .real_check import segments_from_frame_ids

FPS = 30.0
LEAD = 0.15
SPEAKERS = {"Obama": ["Obama_clip1", "Obama_clip2", "Obama_clip3"],
            "Andrew Ng": ["andrew_clip_1", "andrew_clip_2"], "Kristi Noem": ["KristiNoem"]}
JAW = V.CHANNEL_INDEX["jawOpen"]


def _load(root):
    from .landmarks import video_landmarks
    from .mouth import fill_nan, lip_gap

    data = {}
    for clips in SPEAKERS.values():
        for name in clips:
            ids = json.loads((root / "phoneme" / f"{name}_seq.json").read_text())
            gap = fill_nan(lip_gap(video_landmarks(root / "video_silent" / f"{name}.mp4")))
            n = min(len(ids), len(gap))
            data[name] = (to_visemes(segments_from_frame_ids(ids[:n], FPS), "arpabet"), gap[:n], n)
    return data


def _score(data, name):
    from .lipsync import best_lag_corr
    from .mouth import mouth_opening

    segs, gap, n = data[name]
    exp, seal = V.articulate(segs, np.arange(n) / FPS, V.Coarticulation(lead=LEAD))
    V.seal_lips(exp, seal)
    return best_lag_corr(mouth_opening(exp), gap, 3)[0]


def _shares(data, name, base):
    """(T, classes): each class's blended share of the jaw channel."""
    segs, gap, n = data[name]
    cols = []
    for k in range(len(V._CLASSES)):
        V._TARGET[:] = 0
        V._TARGET[k, JAW] = 1.0
        e, _ = V.articulate(segs, np.arange(n) / FPS, V.Coarticulation(lead=LEAD))
        cols.append(e[:, JAW])
    V._TARGET[:] = base
    return np.stack(cols, 1)


def fitted_jaw(data, names, base) -> np.ndarray:
    from ..generate.opening import _W

    opening = base[:, :-1] @ _W - base[:, JAW] * base[:, -1]  # per class, mouthClose = seal x jaw
    xs, ys = [], []
    for i, name in enumerate(names):
        w = _shares(data, name, base)
        gap = data[name][1]
        onehot = np.zeros((w.shape[0], len(names)))
        onehot[:, i] = 1.0
        xs.append(np.hstack([w, onehot]))
        ys.append((gap - gap.mean()) / gap.std())
    x, y = np.vstack(xs), np.concatenate(ys)
    coef = np.linalg.solve(x.T @ x + np.eye(x.shape[1]), x.T @ y)[: len(V._CLASSES)]
    a, b = np.polyfit(coef, opening, 1)  # onto the hand-set scale
    target = 0.5 * ((a * coef + b) + opening)
    sil = V._CLASSES.index(V.SILENCE)
    target[sil] = min(target[sil], 0.08)
    jaw = base[:, JAW].copy()
    for k, c in enumerate(V._CLASSES):
        if c != "PBM":  # bilabials stay shut
            jaw[k] = np.clip(target[k] - (opening[k] - base[k, JAW]), 0.03, 0.8)
    return jaw


def main() -> int:
    from .clips import default_data_root

    root = default_data_root() / "talking_3dmm"
    if not root.is_dir():
        print(f"no real data at {root}")
        return 1
    data = _load(root)
    base = V._TARGET.copy()
    for held, clips in SPEAKERS.items():
        train = [c for s, cs in SPEAKERS.items() if s != held for c in cs]
        before = [_score(data, c) for c in clips]
        V._TARGET[:, JAW] = fitted_jaw(data, train, base)
        after = [_score(data, c) for c in clips]
        V._TARGET[:] = base
        print(f"held out {held:12s} before {np.round(before, 3)} after {np.round(after, 3)}")
    jaw = fitted_jaw(data, [c for cs in SPEAKERS.values() for c in cs], base)
    print("jawOpen fitted on all clips:", {c: round(float(j), 2) for c, j in zip(V._CLASSES, jaw)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
