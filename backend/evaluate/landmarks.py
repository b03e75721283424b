"""dlib's 68 landmarks for every frame of a video, cached under ~/.cache/flowvq/landmarks (never in
the repository), keyed by the file's content hash."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    from ..tracker.cache import cache_root

    d = cache_root() / "landmarks"
    d.mkdir(parents=True, exist_ok=True)
    return d


def frame_landmarks(gray: np.ndarray, last_box=None):
    """(68, 2) for the largest face in a grayscale frame, or None; reuses last_box when detection fails."""
    from ..tracker.dlib_models import dlib_models

    models = dlib_models()
    det, pred = models.detector, models.predictor
    faces = det(gray, 0)
    if len(faces) == 0 and gray.shape[0] < 400:
        faces = det(gray, 1)  # small crops: one upsampling finds faces the plain pass misses
    if len(faces) == 0:
        if last_box is None:
            return None, None
        box = last_box
    else:
        box = max(faces, key=lambda r: r.width() * r.height())
    shape = pred(gray, box)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32), box


def video_landmarks(video: str | Path) -> np.ndarray:
    """(T, 68, 2) float32 pixel coordinates, NaN where no face was ever found."""
    import cv2

    video = Path(video)
    digest = hashlib.sha256(video.read_bytes()).hexdigest()[:24]
    cached = cache_dir() / f"{digest}.npz"
    if cached.exists():
        with np.load(cached) as z:
            return z["landmarks"]
    cap = cv2.VideoCapture(str(video))
    out, box = [], None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        lm, box = frame_landmarks(gray, box)
        out.append(lm if lm is not None else np.full((68, 2), np.nan, np.float32))
    cap.release()
    arr = np.stack(out) if out else np.zeros((0, 68, 2), np.float32)
    tmp = cached.with_suffix(".tmp.npz")
    np.savez(tmp, landmarks=arr)
    tmp.replace(cached)
    return arr
