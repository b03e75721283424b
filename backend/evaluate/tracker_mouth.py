"""Does the tracker follow small mouths? Fitted mouth opening vs dlib's inner-lip gap on real clips.

Per real clip (video_with_audio/, talking_3dmm/video_silent/, emotion_3dmm/video_silent/ under the
shared data folder; the first `seconds` of each) the clip is tracked with the project's tracker and
the fitted mouth opening (`mouth_opening(expression)`) is correlated (Pearson) with the inner-lip
gap of the very landmarks the tracker was given (`lip_gap`), on the frames with a face. Conditions:

- ``full``: the clip as it is.
- ``quiet``: the same fit, scored only on the frames whose gap is in the clip's lowest third
  (quiet speech, near-closed lips: where a flattening fit shows first).
- ``small``: every frame resized by `small_scale` (default 0.35) before dlib, so the face is a few
  dozen pixels wide and the landmarks are noisier relative to the gap.
- ``barely``: a synthetic barely-parting speaker made from the clip's own landmarks: per frame the
  mouth and jaw landmarks' motion relative to the clip's most-closed frame (after a similarity
  alignment on the eyes and nose, which the mouth does not move) is multiplied by `barely_factor`
  (default 1/3) and mapped back. Same person, pose, timing and dlib noise; a third of the motion
  (the mean gap drops to ~0.03, the level of the speaker in issue #14).

Also per clip: the mean gap and the frame-to-frame jitter of jawOpen (mean |first difference| and
RMS second difference on consecutive frames with a face). Landmarks and fits are cached under
~/.cache/flowvq/tracker_mouth (override with FLOWVQ_CACHE), keyed by the video's content, the
condition, the fit config and the fitter's source, so a changed fitter is re-measured.

    python -m flowvq.evaluate.tracker_mouth ../shared/data [--seconds 20] [--conditions full,quiet,small,barely]
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from flowvq_shared.channels import CHANNEL_INDEX

from ..tracker.fit import FitConfig
from .mouth import lip_gap, mouth_opening

CONDITIONS = ("full", "quiet", "small", "barely")
STABLE = np.r_[27:48]                     # nose bridge, nostrils, eyes: the mouth does not move them
MOVING = np.r_[0:17, 48:68]               # jaw contour and lips


@dataclass(frozen=True)
class MouthScore:
    clip: str
    condition: str
    frames: int
    corr: float               # Pearson(mouth_opening(expression), lip_gap(landmarks)) on these frames
    mean_gap: float           # mean inner-lip gap / eye-corner distance on these frames
    jitter1: float            # mean |jawOpen[t] - jawOpen[t-1]| (consecutive frames with a face)
    jitter2: float            # RMS of jawOpen's second difference (noise rather than motion)
    seconds: float = float("nan")


def cache_dir() -> Path:
    d = Path(os.environ.get("FLOWVQ_CACHE", Path.home() / ".cache" / "flowvq")) / "tracker_mouth"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:24]


def real_clips(root: Path) -> list[Path]:
    """Every real video under the shared data folder (sorted, grouped by folder)."""
    root = Path(root)
    out = []
    for sub in ("video_with_audio", "talking_3dmm/video_silent", "emotion_3dmm/video_silent"):
        out += sorted((root / sub).glob("*.mp4"))
    return out


def clip_landmarks(video: Path, seconds: float = 20.0, scale: float = 1.0):
    """dlib landmarks of the first `seconds` of a video, frames resized by `scale` (cached).

    -> landmarks (T,68,2), found (T,), score (T,), fps, (h, w) of the (resized) frames."""
    import cv2

    from ..tracker.track import detect_all

    cached = cache_dir() / f"{_digest(video)}_lm_{seconds:g}s_x{scale:g}.npz"
    if cached.exists():
        with np.load(cached) as z:
            return z["landmarks"], z["found"], z["score"], float(z["fps"]), tuple(int(v) for v in z["hw"])
    cap = cv2.VideoCapture(str(video))
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 25.0)
    frames = []
    while len(frames) < round(seconds * fps):
        ok, bgr = cap.read()
        if not ok:
            break
        if scale != 1.0:
            h, w = bgr.shape[:2]
            bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    cap.release()
    lm, found, score, _ = detect_all(frames)
    hw = frames[0].shape[:2]
    tmp = cached.with_suffix(".tmp.npz")
    np.savez(tmp, landmarks=lm, found=found, score=score, fps=fps, hw=np.array(hw))
    tmp.replace(cached)
    return lm, found, score, fps, hw


def _similarity(src: np.ndarray, dst: np.ndarray):
    """Least-squares similarity (s, R, t) with dst ~ s * src @ R.T + t, for (n,2) point sets."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    s = (sig * np.diag(d)).sum() / max((a * a).sum(), 1e-12)
    return s, rot, md - s * ms @ rot.T


def barely_parting(landmarks: np.ndarray, found: np.ndarray, factor: float = 1 / 3) -> np.ndarray:
    """Landmarks of the same clip with the mouth and jaw moving `factor` as much (see the module doc).

    The reference is the mean aligned shape of the clip's most-closed tenth of frames; each frame is
    aligned to it on the STABLE points, its MOVING points are pulled towards the reference by
    `factor`, and the result is mapped back into the frame."""
    lm = np.asarray(landmarks, np.float64)
    out = lm.copy()
    idx = np.where(found)[0]
    gap = lip_gap(lm[idx])
    closed = idx[gap <= np.quantile(gap, 0.1)]
    ref = lm[closed[0]]
    for _ in range(2):                     # mean closed shape in the reference's frame
        al = []
        for i in closed:
            s, r, t = _similarity(lm[i, STABLE], ref[STABLE])
            al.append(s * lm[i] @ r.T + t)
        ref = np.mean(al, 0)
    for i in idx:
        s, r, t = _similarity(lm[i, STABLE], ref[STABLE])
        a = s * lm[i] @ r.T + t                                   # frame in the reference's frame
        a[MOVING] = ref[MOVING] + factor * (a[MOVING] - ref[MOVING])
        out[i] = ((a - t) @ r) / s                                # back: inverse similarity
    return out.astype(np.float32)


_FIT_SOURCE = (Path(__file__).resolve().parents[1] / "tracker" / "fit.py").read_bytes()   # as imported


def _fitter_key(config: FitConfig, model: str) -> str:
    src = _FIT_SOURCE
    return hashlib.sha256(json.dumps([str(model), asdict(config)]).encode() + src).hexdigest()[:12]


def fit_clip(video: Path, condition: str, seconds: float = 20.0, small_scale: float = 0.35,
             barely_factor: float = 1 / 3, model: str = "default", config: FitConfig = FitConfig()):
    """Tracked result for one clip under a condition ('full', 'small' or 'barely'; cached) and seconds spent."""
    from flowvq.facemodel import Camera

    from ..tracker.result import TrackResult
    from ..tracker.track import fit_landmarks

    scale = small_scale if condition == "small" else 1.0
    lm, found, score, fps, (h, w) = clip_landmarks(video, seconds, scale)
    if condition == "barely":
        lm = barely_parting(lm, found, barely_factor)
    tag = f"{condition}{barely_factor:.3g}" if condition == "barely" else f"{condition}{scale:g}"
    cached = cache_dir() / f"{_digest(video)}_fit_{seconds:g}s_{tag}_{_fitter_key(config, model)}.npz"
    if cached.exists():
        return TrackResult.load(cached), json.loads(cached.with_suffix(".json").read_text())["seconds"]
    t0 = time.process_time()
    r = fit_landmarks(lm, found, score, Camera.for_image(w, h), model, fps, config)
    spent = time.process_time() - t0
    cached.with_suffix(".json").write_text(json.dumps({"seconds": spent}))
    r.save(cached.with_suffix(".tmp.npz")).replace(cached)
    return r, spent


def jitter(x: np.ndarray, ok: np.ndarray) -> tuple[float, float]:
    """Mean |first difference| and RMS second difference of x over runs of consecutive valid frames."""
    x = np.asarray(x, np.float64)
    d1 = (x[1:] - x[:-1])[ok[1:] & ok[:-1]]
    d2 = (x[2:] - 2 * x[1:-1] + x[:-2])[ok[2:] & ok[1:-1] & ok[:-2]]
    return (float(np.abs(d1).mean()) if len(d1) else float("nan"),
            float(np.sqrt((d2 ** 2).mean())) if len(d2) else float("nan"))


def score(r, clip: str, condition: str, frames: np.ndarray | None = None, seconds: float = float("nan")) -> MouthScore:
    ok = r.face_found.copy()
    gap = np.where(ok, lip_gap(np.nan_to_num(r.landmarks)), np.nan)
    if frames is not None:
        ok &= frames
    opening = mouth_opening(r.expression)
    corr = float(np.corrcoef(opening[ok], gap[ok])[0, 1]) if ok.sum() > 2 and opening[ok].std() > 0 else 0.0
    j1, j2 = jitter(r.expression[:, CHANNEL_INDEX["jawOpen"]], r.face_found)
    return MouthScore(clip=clip, condition=condition, frames=int(ok.sum()), corr=corr,
                      mean_gap=float(np.nanmean(gap[ok])), jitter1=j1, jitter2=j2, seconds=seconds)


def evaluate_clip(video: Path, conditions=CONDITIONS, seconds: float = 20.0, small_scale: float = 0.35,
                  barely_factor: float = 1 / 3, config: FitConfig = FitConfig()) -> list[MouthScore]:
    out = []
    for cond in conditions:
        if cond == "quiet":
            r, spent = fit_clip(video, "full", seconds, config=config)
            gap = np.where(r.face_found, lip_gap(np.nan_to_num(r.landmarks)), np.nan)
            low = gap <= np.nanquantile(gap, 1 / 3)
            out.append(score(r, video.stem, cond, low))
        else:
            r, spent = fit_clip(video, cond, seconds, small_scale, barely_factor, config=config)
            out.append(score(r, video.stem, cond, seconds=spent))
    return out


def markdown_table(scores: list[MouthScore]) -> str:
    conds = list(dict.fromkeys(s.condition for s in scores))
    clips = list(dict.fromkeys(s.clip for s in scores))
    by = {(s.clip, s.condition): s for s in scores}
    head = "| clip | " + " | ".join(f"{c}: corr (mean gap)" for c in conds) + " | jawOpen jitter full: mean abs d1 / rms d2 |"
    rows = [head, "|---" * (len(conds) + 2) + "|"]
    for clip in clips:
        cells = []
        for c in conds:
            s = by.get((clip, c))
            cells.append("-" if s is None else f"{s.corr:.3f} ({s.mean_gap:.3f})")
        f = by.get((clip, "full"))
        jit = "-" if f is None else f"{f.jitter1:.4f} / {f.jitter2:.4f}"
        rows.append(f"| {clip} | " + " | ".join(cells) + f" | {jit} |")
    med = []
    for c in conds:
        v = [by[k].corr for k in by if k[1] == c]
        med.append(f"{np.median(v):.3f} (min {np.min(v):.3f})" if v else "-")
    f = [by[k] for k in by if k[1] == "full"]
    jit = f"{np.median([s.jitter1 for s in f]):.4f} / {np.median([s.jitter2 for s in f]):.4f}" if f else "-"
    rows.append("| **median** | " + " | ".join(med) + f" | {jit} |")
    return "\n".join(rows)


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="the shared data folder (holds video_with_audio/, talking_3dmm/ ...)")
    ap.add_argument("--seconds", type=float, default=20.0, help="first seconds of each clip (default 20)")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--small-scale", type=float, default=0.35)
    ap.add_argument("--barely-factor", type=float, default=1 / 3)
    ap.add_argument("--clips", default="", help="comma-separated clip stems (default: all)")
    ap.add_argument("--config", default="{}", help="FitConfig overrides as JSON, e.g. '{\"sparsity\": 0}'")
    ap.add_argument("--json", type=Path, help="also write the scores as JSON lines here")
    args = ap.parse_args(argv)
    config = FitConfig(**json.loads(args.config))
    want = {c for c in args.clips.split(",") if c}
    scores = []
    for video in real_clips(args.root):
        if want and video.stem not in want:
            continue
        for s in evaluate_clip(video, args.conditions.split(","), args.seconds, args.small_scale,
                               args.barely_factor, config):
            scores.append(s)
            print(json.dumps(asdict(s)), flush=True)
    if args.json:
        args.json.write_text("".join(json.dumps(asdict(s)) + "\n" for s in scores))
    print(markdown_table(scores))
    return scores


if __name__ == "__main__":
    main()
