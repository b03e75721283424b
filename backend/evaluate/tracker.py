"""Check the tracker against independently fitted Basel coefficients on real clips (talking_3dmm).

Per clip: a ridge regression from tracked (T,64) to the given Basel (T,64) expression, fitted on
the first half and scored on the second (variance-weighted R^2), once with all 64 tracked
channels and once with the mouth/jaw channels only; the ridge penalty is chosen by time-blocked
cross-validation inside the first half only. Also the correlation between the fitted model's
inner-lip gap and dlib's inner-lip gap on the same frames. dlib landmarks and tracked results are
cached under ~/.cache/flowvq/tracker (never in the repository).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from flowvq_shared.channels import EXPRESSION_NAMES

from ..tracker.fit import FitConfig
from .mouth import lip_gap

MOUTH_CHANNELS = tuple(i for i, n in enumerate(EXPRESSION_NAMES)
                       if n.startswith(("jaw", "mouth", "lip", "chin", "tongue")))
ALPHAS = np.logspace(-2, 5, 29)          # ridge penalties per training frame, on standardised inputs
FIT_VERSION = 2                          # bump when the fitter's output changes, to invalidate caches


@dataclass(frozen=True)
class ClipScore:
    clip: str
    frames: int
    r2_all: float
    r2_mouth: float
    mouth_corr: float
    alpha_all: float = float("nan")
    alpha_mouth: float = float("nan")
    seconds: float = float("nan")        # tracking time (landmarks + fit) when it ran (NaN: cached before timing)


def cache_dir() -> Path:
    d = Path(os.environ.get("FLOWVQ_CACHE", Path.home() / ".cache" / "flowvq")) / "tracker"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:24]


def clip_landmarks(video: Path, max_frames: int | None = None):
    """dlib landmarks of every frame (cached): landmarks (T,68,2), found (T,), score (T,), fps, (h, w), seconds."""
    from ..tracker.frames import read_video
    from ..tracker.track import detect_all

    cached = cache_dir() / f"{_digest(video)}_lm_{max_frames or 'all'}.npz"
    if cached.exists():
        with np.load(cached) as z:
            return (z["landmarks"], z["found"], z["score"], float(z["fps"]), tuple(int(v) for v in z["hw"]),
                    float(z["seconds"]))
    t0 = time.perf_counter()
    frames, fps = read_video(Path(video), max_frames)
    lm, found, score, _ = detect_all(frames)
    seconds = time.perf_counter() - t0
    tmp = cached.with_suffix(".tmp.npz")
    np.savez(tmp, landmarks=lm, found=found, score=score, fps=fps, hw=np.array(frames[0].shape[:2]), seconds=seconds)
    tmp.replace(cached)
    return lm, found, score, fps, frames[0].shape[:2], seconds


def track_clip(video: Path, model="default", config: FitConfig = FitConfig(), step: int = 1,
               max_frames: int | None = None):
    """Tracked result for every `step`-th frame of a clip (cached per video, model and fit config) and seconds spent."""
    from flowvq.facemodel import Camera

    from ..tracker.result import TrackResult
    from ..tracker.track import fit_landmarks

    key = hashlib.sha256(json.dumps([FIT_VERSION, str(model), asdict(config), step, max_frames]).encode()).hexdigest()[:12]
    cached = cache_dir() / f"{_digest(video)}_track_{key}.npz"
    lm, found, score, fps, (h, w), lm_seconds = clip_landmarks(video, max_frames)
    timing = cached.with_suffix(".json")                 # seconds the tracking took when it ran
    if cached.exists():
        return TrackResult.load(cached), (json.loads(timing.read_text())["seconds"] if timing.exists() else float("nan"))
    t0 = time.perf_counter()
    keep = np.arange(0, len(lm), step)
    r = fit_landmarks(lm[keep], found[keep], score[keep], Camera.for_image(w, h), model, fps / step, config)
    seconds = time.perf_counter() - t0 + lm_seconds * len(keep) / len(lm)
    timing.write_text(json.dumps({"seconds": seconds}))
    r.save(cached.with_suffix(".tmp.npz")).replace(cached)
    return r, seconds


def _blocks(n: int, folds: int, gap: int):
    """Contiguous validation blocks and their training indices, leaving `gap` frames out either side."""
    edges = np.linspace(0, n, folds + 1).round().astype(int)
    for a, b in zip(edges[:-1], edges[1:]):
        train = np.r_[0:max(a - gap, 0), min(b + gap, n):n]
        yield train, np.arange(a, b)


SD_FLOOR = 0.01      # 1% of a channel's 0..1 range: near-constant channels are not blown up by z-scoring


def _standardiser(xtr: np.ndarray):
    """z-score with the training statistics (sd floored, inputs clipped to the training range so the ridge
    never extrapolates); channels constant in training are dropped."""
    mu, sd, lo, hi = xtr.mean(0), np.maximum(xtr.std(0), SD_FLOOR), xtr.min(0), xtr.max(0)
    use = hi - lo > 1e-6
    return lambda x: (np.clip(x[:, use], lo[use], hi[use]) - mu[use]) / sd[use]


def _ridge_paths(xtr: np.ndarray, ytr: np.ndarray, xva: np.ndarray, alphas) -> np.ndarray:
    """Ridge predictions on xva for every penalty at once (one SVD): (len(alphas), len(xva), q)."""
    z = _standardiser(xtr)
    a, b = z(xtr), z(xva)
    ym = ytr.mean(0)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    uty, bv = u.T @ (ytr - ym), b @ vt.T
    return np.stack([bv @ ((s / (s * s + alpha * len(a)))[:, None] * uty) for alpha in alphas]) + ym


def choose_alphas(x: np.ndarray, y: np.ndarray, alphas=ALPHAS, folds: int = 5, gap: int = 10) -> np.ndarray:
    """Per output channel, the ridge penalty with the least squared error over time-blocked CV folds of (x, y)."""
    gap = min(gap, len(x) // (4 * folds))      # frames either side of a validation block left out (autocorrelation)
    sse = np.zeros((len(alphas), y.shape[1]))
    for train, val in _blocks(len(x), folds, gap):
        sse += ((_ridge_paths(x[train], y[train], x[val], alphas) - y[val]) ** 2).sum(1)
    return np.asarray(alphas)[np.argmin(sse, axis=0)]


def ridge_predict(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, alpha_per_output: np.ndarray) -> np.ndarray:
    uniq = np.unique(alpha_per_output)
    paths = _ridge_paths(xtr, ytr, xte, uniq)
    pick = np.searchsorted(uniq, alpha_per_output)
    return paths[pick, :, np.arange(ytr.shape[1])].T


def ridge_r2(x: np.ndarray, y: np.ndarray, alphas=ALPHAS) -> tuple[float, float]:
    """Penalties chosen inside the first half, fit on the first half, variance-weighted R^2 on the second.

    Returns (R^2, median chosen penalty)."""
    n = len(x) // 2
    xtr, xte, ytr, yte = x[:n], x[n:], y[:n], y[n:]
    chosen = choose_alphas(xtr, ytr, alphas)
    pred = ridge_predict(xtr, ytr, xte, chosen)
    return float(1.0 - ((yte - pred) ** 2).sum() / ((yte - yte.mean(0)) ** 2).sum()), float(np.median(chosen))


def evaluate_clip(video: Path, coeff_mat: Path, step: int = 1, max_frames: int | None = None,
                  model="default", config: FitConfig = FitConfig()) -> ClipScore:
    from scipy.io import loadmat

    from flowvq.facemodel import load_face_model

    r, seconds = track_clip(video, model, config, step, max_frames)
    basel = loadmat(str(coeff_mat))["coeff"][:, 80:144].astype(np.float64)
    keep = np.arange(0, len(r.face_found) * step, step)
    ok = r.face_found & (keep < len(basel))
    x, y = r.expression[ok].astype(np.float64), basel[keep[ok]]
    m = load_face_model(model)
    lm3 = m.landmarks(r.expression[ok], r.identity)
    tracked_gap = lm3[:, 62, 1] - lm3[:, 66, 1]
    lm2 = r.landmarks[ok]
    dlib_gap = lip_gap(lm2)
    corr = float(np.corrcoef(tracked_gap, dlib_gap)[0, 1])
    r2_all, a_all = ridge_r2(x, y)
    r2_mouth, a_mouth = ridge_r2(x[:, MOUTH_CHANNELS], y)
    return ClipScore(clip=Path(video).stem, frames=int(ok.sum()), r2_all=r2_all, r2_mouth=r2_mouth,
                     mouth_corr=corr, alpha_all=a_all, alpha_mouth=a_mouth, seconds=seconds)


def aligned_landmarks(lm: np.ndarray) -> np.ndarray:
    """(T,68,2) -> (T,136): each frame's landmarks similarity-aligned (Procrustes) onto the clip's mean shape."""
    c = lm - lm.mean(1, keepdims=True)
    c = c / np.linalg.norm(c, axis=(1, 2), keepdims=True)
    ref = c.mean(0)
    for _ in range(3):
        out = []
        for f in c:
            u, _, vt = np.linalg.svd(f.T @ ref)
            out.append(f @ (u @ vt))
        ref = np.mean(out, 0)
    return np.stack(out).reshape(len(lm), -1)


def landmark_baseline(video: Path, coeff_mat: Path) -> float:
    """Reference: the same ridge from dlib's aligned raw landmarks (136 numbers, what the tracker sees) to Basel."""
    from scipy.io import loadmat

    lm, found, *_ = clip_landmarks(video)
    basel = loadmat(str(coeff_mat))["coeff"][:, 80:144].astype(np.float64)
    ok = found.copy()
    ok[len(basel):] = False
    return ridge_r2(aligned_landmarks(lm[ok].astype(np.float64)), basel[np.where(ok)[0]])[0]


def clips(root: Path):
    root = Path(root)
    for video in sorted((root / "video_silent").glob("*.mp4")):
        mat = root / "3DMM" / f"{video.stem}.mat"
        if mat.exists():
            yield video, mat


def evaluate_talking_3dmm(root: Path, step: int = 1, max_frames: int | None = None) -> list[ClipScore]:
    return [evaluate_clip(video, mat, step, max_frames) for video, mat in clips(root)]


def markdown_table(scores: list[ClipScore]) -> str:
    rows = ["| clip | frames | ridge R^2 (all 64) | ridge R^2 (mouth/jaw channels) | corr(mouth opening, dlib inner-lip gap) "
            "| median ridge alpha (all / mouth) | tracking time |",
            "|---|---|---|---|---|---|---|"]
    rows += [f"| {s.clip} | {s.frames} | {s.r2_all:.3f} | {s.r2_mouth:.3f} | {s.mouth_corr:.3f} "
             f"| {s.alpha_all:.3g} / {s.alpha_mouth:.3g} | {s.seconds:.0f} s ({1000 * s.seconds / max(s.frames, 1):.0f} ms/frame) |"
             for s in scores]
    return "\n".join(rows)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("root", type=Path)
    ap.add_argument("--step", type=int, default=1)
    ap.add_argument("--landmarks-only", action="store_true", help="only detect and cache the dlib landmarks")
    ap.add_argument("--landmark-baseline", action="store_true",
                    help="reference R^2 of the same ridge from dlib's aligned raw landmarks (no face model)")
    args = ap.parse_args()
    if args.landmark_baseline:
        for video, mat in clips(args.root):
            print(f"| {video.stem} | {landmark_baseline(video, mat):.3f} |", flush=True)
    elif args.landmarks_only:
        for video, _ in clips(args.root):
            print(video.stem, clip_landmarks(video)[-1], "s", flush=True)
    else:
        scores = []
        for video, mat in clips(args.root):
            scores.append(evaluate_clip(video, mat, args.step))
            print(json.dumps(asdict(scores[-1])), flush=True)
        print(markdown_table(scores))
