"""Image or video -> per-frame expression (64), pose (6), one identity: dlib landmarks + model fit."""
from __future__ import annotations

import numpy as np

from flowvq.errors import NoFace
from flowvq.facemodel import Camera, load_face_model

from .fit import FitConfig, LandmarkFitter
from .frames import load_frames
from .landmarks import detect_landmarks
from .result import TrackResult


FOLLOW_ABOVE = 1280  # px, a frame's longer side: above it the face is looked for near the last one first
SEARCH_EVERY = 10  # ... and the whole frame searched every 10th frame (the face count; a lost face)


def _near(frame: np.ndarray, last: np.ndarray):
    """The face near the last frame's landmarks, found in a crop scaled to the detector's working size (as a
    shot is followed, follow.py) with its landmarks at full resolution -> (pts, score) or None."""
    import cv2

    from .follow import _detect_near, _shape

    (x0, y0), (x1, y1) = last.min(0), last.max(0)
    hit = _detect_near(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (x0, y0, x1, y1))
    if hit is None:
        return None
    return _shape(np.ascontiguousarray(frame), hit[0]), hit[1]  # on the colour frame, as detect_landmarks


def detect_all(frames, report=lambda fraction, stage: None, total: int | None = None):
    """dlib on every frame -> landmarks (T,68,2) NaN where no face, found (T,), detector score (T,), #multi-face frames.
    `frames`: a list, or any iterable of at most `total` frames (a video read one frame at a time). Frames over
    FOLLOW_ABOVE px (HD footage: the whole-frame search is ~7 s per second of 1080p) are searched near the last
    face and whole every SEARCH_EVERY-th; the multi-face count is then scaled from the frames searched whole."""
    t = len(frames) if total is None else int(total)
    landmarks = np.full((t, 68, 2), np.nan, np.float32)
    found = np.zeros(t, bool)
    score = np.zeros(t, np.float32)
    several, searched, last, i = 0, 0, None, -1
    for i, frame in enumerate(frames):
        if i >= t:
            break
        hit = None
        if last is not None and i % SEARCH_EVERY and max(frame.shape[:2]) > FOLLOW_ABOVE:
            hit = _near(frame, last)
        if hit is not None:
            pts, s = hit
        else:
            pts, n, s = detect_landmarks(frame)
            searched += 1
            several += pts is not None and n > 1
        if pts is not None:
            landmarks[i], found[i], score[i] = pts, True, s
        last = pts
        if i % 10 == 0:
            report(0.5 * i / t, "landmarks")
    t = i + 1  # a stream may hold fewer frames than its header said
    if 0 < searched < t:
        several = int(round(several * t / searched))
    return landmarks[:t], found[:t], score[:t], several


def fit_landmarks(landmarks, found, score, camera: Camera, model="default", fps: float = 0.0,
                  config: FitConfig = FitConfig(), notes=(), report=lambda fraction, stage: None) -> TrackResult:
    """Fit the model to already-detected landmarks (what `track` does after dlib)."""
    m = load_face_model(model)
    notes = list(notes)
    t = len(landmarks)
    if not found.any():
        raise NoFace("no face found" + (" in the image" if t == 1 else f" in any of {t} frames"))
    if (~found).any():
        notes.append(f"no face in {int((~found).sum())} of {t} frames (flagged, not filled)")
    fitter = LandmarkFitter(m, camera, config)
    identity, pose, expr, rms = fitter.fit_sequence(landmarks, found, lambda f: report(0.5 + 0.5 * f, "fit"))
    # confidence: detector margin and reprojection error (in % of eye-corner distance), both squashed
    spread = np.linalg.norm(landmarks[:, 45] - landmarks[:, 36], axis=1)
    err = np.where(found, rms / np.maximum(np.nan_to_num(spread), 1e-3) * 100.0, np.inf)
    conf = np.where(found, (1 / (1 + np.exp(-2.0 * score))) * np.exp(-np.nan_to_num(err, posinf=1e9) / 10.0), 0.0)
    report(1.0, "done")
    return TrackResult(expression=expr.astype(np.float32), pose=pose.astype(np.float32),
                       identity=identity.astype(np.float32), camera=camera, fps=float(fps),
                       landmarks=np.asarray(landmarks, np.float32), confidence=conf.astype(np.float32),
                       face_found=np.asarray(found, bool), model=m.name, notes=notes)


def track(source, model="default", progress=None, fps: float | None = None, config: FitConfig = FitConfig(),
          max_frames: int | None = None) -> TrackResult:
    """Track a face through `source` (path, RGB array, or frames); progress(fraction, stage)."""
    report = progress or (lambda fraction, stage: None)
    load_face_model(model)                      # bad model names fail before the slow part
    frames, fps_out, notes = load_frames(source, fps, max_frames)
    h, w = frames[0].shape[:2]
    landmarks, found, score, several = detect_all(frames, report)
    if several:
        notes.append(f"several faces in {several} frame(s): tracked the largest")
    return fit_landmarks(landmarks, found, score, Camera.for_image(w, h), model, fps_out, config, notes, report)
