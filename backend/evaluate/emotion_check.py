"""The corpus's emotion displays against what the tracker sees on real emotional faces.

`python -m flowvq.evaluate.emotion_check data/corpus_v3` tracks the MEAD actor's emotion videos in
../shared/data/emotion_3dmm (cached by flowvq.evaluate) and compares, per emotion, the mean
expression's deviation from the mean over all emotions, real (tracked) versus corpus: the
cosine between the two 64-d deviation vectors and the top channels of each. `flowvq eval`'s
emotion classifier is trained on such tracked curves, so a corpus display pointing the same way
is one it can recognise.
"""
from __future__ import annotations

import argparse

import numpy as np

from flowvq_shared.channels import EXPRESSION_NAMES


def _top(d: np.ndarray, k: int = 5) -> str:
    return ", ".join(f"{EXPRESSION_NAMES[i]} {d[i]:+.2f}" for i in np.argsort(-np.abs(d))[:k])


def main(argv=None) -> int:
    from ..training.dataset import Dataset
    from .clips import load_emotion_videos
    from .emotion import tracked_emotion_curves

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", help="a corpus dataset folder")
    args = ap.parse_args(argv)
    real = {e: np.concatenate([x for x, _ in v]).mean(0)
            for e, v in tracked_emotion_curves(load_emotion_videos()).items()}
    ds = Dataset.open(args.corpus)
    sums: dict[str, list] = {}
    for i, meta in enumerate(ds.items):
        if meta["emotion"] in real:
            sums.setdefault(meta["emotion"], []).append(ds.load_coeffs(i)[0].mean(0))
    emotions = sorted(set(real) & set(sums))
    corpus = {e: np.mean(sums[e], 0) for e in emotions}
    real_mean = np.mean([real[e] for e in emotions], 0)
    corpus_mean = np.mean([corpus[e] for e in emotions], 0)
    print("| emotion | cosine(real, corpus) | real (tracked) top deviations | corpus top deviations |")
    print("|---|---|---|---|")
    cos = []
    for e in emotions:
        r, c = real[e] - real_mean, corpus[e] - corpus_mean
        cs = float(r @ c / (np.linalg.norm(r) * np.linalg.norm(c) + 1e-12))
        cos.append(cs)
        print(f"| {e} | {cs:+.2f} | {_top(r)} | {_top(c)} |")
    print(f"median cosine {np.median(cos):+.2f} over {len(emotions)} emotions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
