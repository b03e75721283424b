"""Check the tracker against independently fitted Basel coefficients on real clips (talking_3dmm).

Per clip: a ridge regression from tracked (T,64) to the given Basel (T,64) expression, fitted on
the first half and scored on the second (variance-weighted R^2), once with all 64 tracked
channels and once with the mouth/jaw channels only; and the correlation between the fitted
model's inner-lip gap and dlib's inner-lip gap on the same frames.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from flowvq_shared.channels import EXPRESSION_NAMES

MOUTH_CHANNELS = tuple(i for i, n in enumerate(EXPRESSION_NAMES)
                       if n.startswith(("jaw", "mouth", "lip", "chin", "tongue")))


@dataclass(frozen=True)
class ClipScore:
    clip: str
    frames: int
    r2_all: float
    r2_mouth: float
    mouth_corr: float


def ridge_r2(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> float:
    """Fit ridge on the first half, variance-weighted R^2 on the second half."""
    n = len(x) // 2
    xtr, xte, ytr, yte = x[:n], x[n:], y[:n], y[n:]
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a, b = (xtr - mu) / sd, (xte - mu) / sd
    ym = ytr.mean(0)
    w = np.linalg.solve(a.T @ a + alpha * len(a) * 1e-2 * np.eye(a.shape[1]), a.T @ (ytr - ym))
    pred = b @ w + ym
    return float(1.0 - ((yte - pred) ** 2).sum() / ((yte - yte.mean(0)) ** 2).sum())


def evaluate_clip(video: Path, coeff_mat: Path, step: int = 1, max_frames: int | None = None,
                  model="default") -> ClipScore:
    from scipy.io import loadmat

    from flowvq.facemodel import load_face_model

    from .frames import read_video
    from .track import track

    frames, fps = read_video(Path(video), max_frames)
    basel = loadmat(str(coeff_mat))["coeff"][:, 80:144].astype(np.float64)
    n = min(len(frames), len(basel))
    keep = np.arange(0, n, step)
    r = track([frames[i] for i in keep], model=model, fps=fps / step)
    ok = r.face_found
    x, y = r.expression[ok].astype(np.float64), basel[keep][ok]
    m = load_face_model(model)
    lm3 = m.landmarks(r.expression[ok], r.identity)
    tracked_gap = lm3[:, 62, 1] - lm3[:, 66, 1]
    lm2 = r.landmarks[ok]
    dlib_gap = np.linalg.norm(lm2[:, 66] - lm2[:, 62], axis=1) / np.linalg.norm(lm2[:, 45] - lm2[:, 36], axis=1)
    corr = float(np.corrcoef(tracked_gap, dlib_gap)[0, 1])
    return ClipScore(clip=Path(video).stem, frames=int(ok.sum()), r2_all=ridge_r2(x, y),
                     r2_mouth=ridge_r2(x[:, MOUTH_CHANNELS], y), mouth_corr=corr)


def evaluate_talking_3dmm(root: Path, step: int = 1, max_frames: int | None = None) -> list[ClipScore]:
    root = Path(root)
    out = []
    for video in sorted((root / "video_silent").glob("*.mp4")):
        mat = root / "3DMM" / f"{video.stem}.mat"
        if mat.exists():
            out.append(evaluate_clip(video, mat, step, max_frames))
    return out


def markdown_table(scores: list[ClipScore]) -> str:
    rows = ["| clip | frames | ridge R^2 (all 64) | ridge R^2 (mouth/jaw channels) | corr(mouth opening, dlib inner-lip gap) |",
            "|---|---|---|---|---|"]
    rows += [f"| {s.clip} | {s.frames} | {s.r2_all:.3f} | {s.r2_mouth:.3f} | {s.mouth_corr:.3f} |" for s in scores]
    return "\n".join(rows)


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("root", type=Path)
    ap.add_argument("--step", type=int, default=1)
    args = ap.parse_args()
    scores = evaluate_talking_3dmm(args.root, args.step)
    print(markdown_table(scores))
    print(json.dumps([asdict(s) for s in scores]))
