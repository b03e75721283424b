"""Plates against real video: render a clip's held-out tail from its tracked curves and compare.

`python -m flowvq.evaluate.plates --video CLIP --train-end 15 [--refine CKPT] [--json OUT]`

The portrait is the clip's first frame; the tail (frames after --train-end seconds) is tracked
together with it (one identity), its curves are made relative to the portrait, rendered, and
each plate is compared with the real frame: SSIM (full frame and face crop), dlib identity
distance, face-region sharpness ratio, inner-lip gap correlation, and the mean distance between
dlib's 68 landmarks on the plate and on the real frame (all points / mouth points 48-67, in
pixels; the paper's F-LMD / M-LMD in spirit)."""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def evaluate_clip(video, train_end: float = 15.0, refine=None, max_frames: int | None = None,
                  fidelity: float = 0.5, still: bool = False, fade: float | None = None, log=print) -> dict:
    from skimage.metrics import structural_similarity

    from ..tracker import track
    from ..tracker.frames import read_video
    from ..render import PlateRenderer, PortraitFit, WarpSettings
    from ..vqig.crop import crop_face, face_box
    from .faces import face_sharpness, identity_distance, measure_face, pearson

    frames, fps = read_video(video)
    tail = list(range(int(round(train_end * fps)), len(frames)))[:max_frames]
    clip = [frames[0]] + [frames[i] for i in tail]
    t0 = time.perf_counter()
    r = track(clip, fps=fps)
    log(f"tracked {len(clip)} frames in {time.perf_counter() - t0:.1f} s")
    if not r.face_found[0]:
        raise ValueError("no face in the clip's first frame")
    fit = PortraitFit(r.identity, r.expression[0], r.pose[0], r.camera, r.landmarks[0])
    ok = np.flatnonzero(r.face_found[1:]) + 1
    exp = r.expression[ok] - r.expression[0]
    pose = r.pose[ok] - r.pose[0]
    t0 = time.perf_counter()
    settings = WarpSettings() if fade is None else WarpSettings(fade=fade)
    renderer = PlateRenderer(clip[0], fit=fit, refine=refine, fidelity=fidelity, settings=settings)
    plates = [f for _, f in renderer.render(exp, pose)]
    render_s = time.perf_counter() - t0
    box = face_box(r.landmarks[0])
    if still:  # baseline: the portrait itself on every frame (what "no animation" scores)
        plates = [clip[0]] * len(ok)
    rows = []
    for k, plate in zip(ok, plates):
        real = clip[k]
        mr, mp = measure_face(real), measure_face(plate)
        row = {"ssim": float(structural_similarity(real, plate, channel_axis=2)),
               "ssim_face": float(structural_similarity(crop_face(real, box, 256), crop_face(plate, box, 256),
                                                        channel_axis=2))}
        if mr.found and mp.found:
            d = np.linalg.norm(mp.landmarks - mr.landmarks, axis=1)  # dlib on the plate vs on the real frame
            row.update(lmd_face=float(d.mean()), lmd_mouth=float(d[48:].mean()))
            row.update(identity=identity_distance(mr, mp), gap_real=mr.lip_gap, gap_plate=mp.lip_gap,
                       sharpness=face_sharpness(plate, mp.landmarks) / max(face_sharpness(real, mr.landmarks), 1e-9))
        rows.append(row)
    found = [r_ for r_ in rows if "identity" in r_]

    def mean(key, rs=rows):
        return float(np.mean([x[key] for x in rs])) if rs else float("nan")

    return {
        "video": str(video), "portrait_frame": 0, "frames": len(rows), "fps": fps,
        "method": "still portrait (baseline)" if still else ("refined" if renderer.refiner else "geometry"),
        "fade": settings.fade,
        "refined": renderer.refiner is not None, "versions": renderer.versions,
        "ssim_full": mean("ssim"), "ssim_face_crop": mean("ssim_face"),
        "identity_distance_mean": mean("identity", found),
        "identity_distance_max": float(max(x["identity"] for x in found)) if found else float("nan"),
        "sharpness_ratio_mean": mean("sharpness", found),
        "landmark_distance_face_px": mean("lmd_face", found), "landmark_distance_mouth_px": mean("lmd_mouth", found),
        "lip_gap_correlation_with_real": pearson([x["gap_real"] for x in found], [x["gap_plate"] for x in found]),
        "faces_lost": len(rows) - len(found),
        "render_seconds": round(render_s, 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", required=True)
    ap.add_argument("--train-end", type=float, default=15.0)
    ap.add_argument("--refine", default=None)
    ap.add_argument("--fidelity", type=float, default=0.5)
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--fade", type=float, default=None, help="WarpSettings.fade (default: the renderer's)")
    ap.add_argument("--still", action="store_true", help="score the unanimated portrait instead (baseline)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    res = evaluate_clip(a.video, a.train_end, a.refine, a.max_frames, a.fidelity, a.still, a.fade)
    print(json.dumps(res, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
