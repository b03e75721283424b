"""Dubbing measured against the real frames of a held-out part of a shot (issue #16, docs/evaluation.md).

For each development shot: the actor is learned from its first part (or, with --bank-only, only a
mouth bank is built from it) and its held-out tail is dubbed (a) with the tail's own tracked curves
and (b) from the tail's own audio, and rendered by today's portrait path as the baseline (the
tail's tracked curves from its first frame). Each result is compared with the real tail, frame by
frame, on regions placed by the real frame's dlib landmarks:

- lip r: Pearson r of the dlib inner-lip gap (evaluate.mouth.lip_gap) of the result vs the real
  frames; (a) and the baseline at lag 0, (b) at the best lag within +-2 frames (as lip-sync elsewhere);
- SSIM (grey, skimage) of the upper face (brows, eyes, nose bridge: above the nose base) and of the
  mouth region (the lips' box, grown by half the mouth width);
- sharpness: Laplacian variance in the mouth region, result over real (median over frames);
- identity: dlib's 128-d face descriptor distance, result vs real, on every 5th frame (max and mean).
"""
from __future__ import annotations

import argparse
import os
import json
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

SAMPLE_EVERY = 5


def _boxes(lm: np.ndarray, h: int, w: int):
    """(upper-face box, mouth box) as (x0, y0, x1, y1) from a real frame's landmarks."""
    up = lm[np.r_[17:48]]
    x0, y0 = up.min(0)
    x1 = up[:, 0].max()
    y1 = lm[[31, 33, 35], 1].min()
    m = lm[48:68]
    mw = float(m[:, 0].max() - m[:, 0].min())
    mx0, my0 = m.min(0) - 0.5 * mw
    mx1, my1 = m.max(0) + 0.5 * mw
    clip = lambda a, b, c, d: (int(max(a, 0)), int(max(b, 0)), int(min(c, w)), int(min(d, h)))  # noqa: E731
    return clip(x0, y0, x1, y1), clip(mx0, my0, mx1, my1)


def _ssim(a: np.ndarray, b: np.ndarray, box) -> float:
    from skimage.metrics import structural_similarity

    x0, y0, x1, y1 = box
    ga = cv2.cvtColor(a[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    gb = cv2.cvtColor(b[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    if min(ga.shape) < 7:
        return float("nan")
    return float(structural_similarity(ga, gb, data_range=255))


def _sharp(a: np.ndarray, box) -> float:
    x0, y0, x1, y1 = box
    g = cv2.cvtColor(a[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(g, cv2.CV_32F, ksize=3).var())


def compare(real_frames, result_frames, lag_window: int = 0) -> dict:
    """Real vs result frame sequences (equal length, RGB uint8) -> the measures above."""
    from ..evaluate.faces import identity_distance, measure_face, pearson
    from ..evaluate.lipsync import best_lag_corr
    from ..evaluate.mouth import fill_nan

    gaps_r, gaps_d, up, mouth, sharp, ident = [], [], [], [], [], []
    missing = 0
    for i, (r, d) in enumerate(zip(real_frames, result_frames)):
        embed = i % SAMPLE_EVERY == 0
        fr = measure_face(r, embed=embed)
        fd = measure_face(d, embed=embed)
        if not fr.found:
            gaps_r.append(np.nan)
            gaps_d.append(np.nan)
            continue
        gaps_r.append(fr.lip_gap)
        gaps_d.append(fd.lip_gap if fd.found else np.nan)
        missing += not fd.found
        ub, mb = _boxes(fr.landmarks, r.shape[0], r.shape[1])
        up.append(_ssim(r, d, ub))
        mouth.append(_ssim(r, d, mb))
        sr = _sharp(r, mb)
        sharp.append(_sharp(d, mb) / sr if sr > 1e-6 else np.nan)
        if embed:
            ident.append(identity_distance(fr, fd) if fd.found else np.inf)
    gr, gd = fill_nan(np.array(gaps_r)), fill_nan(np.array(gaps_d))
    if lag_window:
        r, lag = best_lag_corr(gd, gr, max_lag=lag_window)
    else:
        r, lag = pearson(gd, gr), 0
    return {"frames": len(gaps_r), "no_face_in_result": int(missing), "lip_r": round(float(r), 3), "lag": int(lag),
            "ssim_upper": round(float(np.nanmean(up)), 3), "ssim_mouth": round(float(np.nanmean(mouth)), 3),
            "sharpness_ratio": round(float(np.nanmedian(sharp)), 3),
            "identity_max": round(float(np.max(ident)), 3) if ident else None,
            "identity_mean": round(float(np.mean(ident)), 3) if ident else None}


def cut(src: Path, dst: Path, start: float | None = None, length: float | None = None) -> Path:
    """A frame-accurate cut (re-encoded near-losslessly, sound kept) with the ffmpeg imageio-ffmpeg ships."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y"]
    if start:
        cmd += ["-ss", f"{start:.3f}"]
    cmd += ["-i", str(src)]
    if length:
        cmd += ["-t", f"{length:.3f}"]
    cmd += ["-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", "-c:a", "aac", str(dst)]
    subprocess.run(cmd, check=True)
    return dst


def frames_of(path: Path):
    from ..tracker.follow import Shot

    return list(Shot.open(path).frames_rgb())


def baseline_portrait(tail: Path, track_npz: Path) -> list[np.ndarray]:
    """Today's portrait path: the tail's tracked curves rendered from its first frame."""
    from ..render.plates import PlateRenderer
    from ..render.warp import WarpSettings
    from ..tracker.result import TrackResult

    tr = TrackResult.load(track_npz)
    frames = frames_of(tail)
    r = PlateRenderer(frames[0], settings=WarpSettings(expression_mode="absolute"))
    pose = tr.pose - tr.pose[0]
    return [f for _, f in r.render(tr.expression, pose)]


def evaluate_shot(video: Path, learn_s: float, dub_s: float, work: Path, actor_dir: Path | None, log=print) -> dict:
    from .run import dub_shot
    from ..tracker.follow import Shot
    from ..render.writers import frame_name, read_frame

    work.mkdir(parents=True, exist_ok=True)
    shot = Shot.open(video)
    tail = cut(video, work / "tail.mp4", start=shot.duration - dub_s)
    track = work / "tail_track.npz"
    if not track.exists():
        from ..tracker import track as track_fn

        track_fn(str(tail)).save(track)
    real = frames_of(tail)
    res = {"video": video.name, "learn_s": learn_s, "bank": "actor profile" if actor_dir is not None else "built from the learned part", "dub_s": dub_s, "frames": len(real),
           "size": f"{shot.width}x{shot.height}", "fps": round(shot.fps, 3)}
    bank = None
    if actor_dir is None or not (actor_dir / "bank" / "mouth.npz").exists():
        from ..render.mouth_bank import bank_from_videos

        bank_path = work / "bank.npz"
        if not bank_path.exists():
            bank_from_videos([video], max_seconds=learn_s).save(bank_path)
        bank = bank_path
    for name, kw, lag in (("curves", {"take": str(track)}, 0), ("audio", {"audio": str(tail)}, 2)):
        out = work / f"dub_{name}"
        t0 = time.perf_counter()
        m = dub_shot(tail, out, actor=None if actor_dir is None else str(actor_dir), bank=bank, log=log, **kw)
        dubbed = [read_frame(out / frame_name(i, "png")) for i in range(m["frames"])]
        res[name] = compare(real, dubbed, lag) | {"seconds": round(time.perf_counter() - t0, 1),
                                                 "synthesis_fps": m["synthesis_fps"]}
        log(f"{video.name} {name}: {res[name]}")
    res["baseline_portrait"] = compare(real, baseline_portrait(tail, track), 0)
    log(f"{video.name} baseline: {res['baseline_portrait']}")
    return res


BARS = {"curves": {"lip_r": 0.8}, "audio": {"lip_r": 0.45}}


def markdown(results: list[dict], command: str, machine: str) -> str:
    """The evaluation part (docs/evaluation_dub.md): one table per shot, the baseline beside."""
    out = ["# Dubbing", "", f"Measured {time.strftime('%Y-%m-%d')} on {machine} with", "", f"    {command}", "",
           "Each shot's tail is dubbed (a) with its own tracked curves and (b) from its own audio, and compared "
           "with the real tail frame by frame (backend/dub/measure.py says how each measure is taken). "
           "Baseline: today's portrait path (the tail's tracked curves rendered from its first frame). "
           "Bars (issue #16): lip r >= 0.8 (a) and >= 0.45 (b), upper-face SSIM >= 0.9, mouth sharpness "
           ">= 0.7 of the real frames', identity distance <= 0.4 on every sampled frame.", ""]
    cols = [("lip_r", "lip r"), ("lag", "lag"), ("ssim_upper", "SSIM upper face"), ("ssim_mouth", "SSIM mouth"),
            ("sharpness_ratio", "mouth sharpness / real"), ("identity_max", "identity max"),
            ("identity_mean", "identity mean"), ("no_face_in_result", "frames dlib misses")]
    for r in results:
        out += [f"## {r['video']}: learned from the first {r['learn_s']:g} s, last {r['dub_s']:g} s dubbed "
                f"({r['frames']} frames, {r['size']}, {r['fps']:g} fps; bank: {r.get('bank', 'actor')})", "",
                "| | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for key, label in (("curves", "(a) dub, own tracked curves"), ("audio", "(b) dub, from its audio"),
                           ("baseline_portrait", "baseline: portrait path, own curves")):
            m = r[key]
            out.append(f"| {label} | " + " | ".join(str(m.get(c[0])) for c in cols) + " |")
        out.append("")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flowvq.dub.measure", description=__doc__.splitlines()[0])
    ap.add_argument("--video", action="append", required=True, help="shot; repeat")
    ap.add_argument("--learn", type=float, action="append", required=True, help="seconds learned from (per video)")
    ap.add_argument("--dub", type=float, action="append", required=True, help="seconds of tail dubbed (per video)")
    ap.add_argument("--actor", action="append", default=None, help="actor profile per video ('-' for none)")
    ap.add_argument("--work", default="out/eval_dub")
    ap.add_argument("-o", "--output", default="out/eval_dub/dub_eval.json")
    ap.add_argument("--write", default=None, help="also write the evaluation part here (docs/evaluation_dub.md)")
    a = ap.parse_args(argv)
    actors = a.actor or ["-"] * len(a.video)
    results = []
    for v, ls, ds, act in zip(a.video, a.learn, a.dub, actors):
        results.append(evaluate_shot(Path(v), ls, ds, Path(a.work) / Path(v).stem,
                                     None if act == "-" else Path(act)))
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))
    if a.write:
        import platform
        import sys

        cmd = "python -m flowvq.dub.measure " + " ".join(sys.argv[1:] if argv is None else argv)
        Path(a.write).write_text(markdown(results, cmd, f"{platform.machine()} CPU, {os.cpu_count()} cores"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
