"""Face videos -> VQIG training data (PlateData), through the tracker and the geometry renderer.

Per clip: track every frame (identity once, expression, pose, landmarks); the clip's first
tracked frame is its "portrait"; every frame t gets (a) its real face crop, (b) the portrait
warped by the geometry renderer to frame t's curves, (c) its curves relative to the portrait
(expression and pose minus the portrait's, the same meaning a take's curves have in `render`).
One crop box per clip (from the portrait's landmarks), as at render time."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BadRequest, NoFace
from ..vqig.crop import crop_face, face_box
from .vqig_data import PlateData


def read_clip(path, start: float = 0.0, end: float | None = None) -> tuple[list[np.ndarray], float]:
    from ..tracker.frames import read_video

    frames, fps = read_video(Path(path))
    a = int(round(start * fps))
    b = len(frames) if end is None else min(len(frames), int(round(end * fps)))
    if b - a < 2:
        raise BadRequest(f"{path}: fewer than 2 frames between {start} s and {end} s")
    return frames[a:b], fps


def prepare_frames(frames: list[np.ndarray], fps: float, size: int, model="default", progress=None) -> PlateData:
    from ..facemodel import load_face_model
    from ..render.fit import PortraitFit
    from ..render.warp import FaceWarper, WarpSettings
    from ..tracker import track

    m = load_face_model(model)
    r = track(frames, model=m, fps=fps)
    ok = np.flatnonzero(r.face_found & np.isfinite(r.expression).all(1) & np.isfinite(r.pose).all(1))
    if len(ok) < 2:
        raise NoFace("fewer than 2 frames with a face in the clip")
    s = int(ok[0])
    fit = PortraitFit(r.identity, r.expression[s], r.pose[s], r.camera, r.landmarks[s])
    warper = FaceWarper(frames[s], m, fit, WarpSettings(expression_mode="absolute"))
    box = face_box(r.landmarks[s])
    crops, warped, coeffs = [], [], []
    for k, t in enumerate(ok):
        crops.append(crop_face(frames[t], box, size))
        w = warper.frame(r.expression[t], r.pose[t] - r.pose[s])
        warped.append(crop_face(w, box, size))
        coeffs.append(np.concatenate([r.expression[t] - r.expression[s], r.pose[t] - r.pose[s]]))
        if progress is not None:
            progress((k + 1) / len(ok))
    return PlateData(np.stack(crops), np.stack(warped), np.asarray(coeffs, np.float32),
                     np.zeros(len(ok), np.int64), crops[0][None].copy())


def prepare_clip(path, size: int, start: float = 0.0, end: float | None = None, model="default",
                 progress=None) -> PlateData:
    frames, fps = read_clip(path, start, end)
    return prepare_frames(frames, fps, size, model, progress)


def prepare_folder(paths: list[Path], size: int, model="default", log=print) -> PlateData:
    parts = []
    for p in paths:
        try:
            parts.append(prepare_clip(p, size, model=model))
            log(f"{p}: {len(parts[-1])} frames")
        except (NoFace, BadRequest) as e:
            log(f"{p}: skipped ({e})")
    if not parts:
        raise BadRequest("no usable face clip in the given videos")
    return PlateData.concat(parts)
