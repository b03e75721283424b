"""A filmed shot (to dub, or an actor's footage): its frames read one at a time, its face's landmarks found and followed.

Landmarks: dlib on every frame, looking first near the last frame's face (a crop scaled so the face
is ~160 px: a 100 px face in a 1080x1920 frame costs what a close-up does) and on the whole frame
when that fails; every COUNT_EVERY frames the whole frame is searched to count faces (a shot with
two faces is refused: which one speaks is not ours to guess)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from flowvq.errors import BadImage, BadRequest, Cancelled, NoFace

COUNT_EVERY = 25
MAX_MULTI_FACE = 0.25  # as for an actor's footage: a second face in more frames than this refuses the shot
FACE_PX = 160.0  # the detector's working face size


@dataclass
class Shot:
    path: Path
    width: int
    height: int
    fps: float
    frames: int
    has_audio: bool = False

    @classmethod
    def open(cls, path) -> "Shot":
        """Probe the header (refusals in one line), then count the frames that decode."""
        import cv2

        from flowvq.video import probe_video

        info = probe_video(path, held=False)  # its frames are read one at a time (frames_rgb)
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise BadImage(f"cannot open video {path}")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)  # the stream's exact rate (23.976..., 22.13)
        cap.release()
        if not fps > 0:
            fps = info.fps
        n = cls._count(Path(path))
        if n == 0:
            raise BadImage(f"video {Path(path).name} has no readable frames")
        return cls(Path(path), info.width, info.height, fps, n, info.has_audio)

    @staticmethod
    def _count(path: Path) -> int:
        """Frames that decode (grab only: no colour conversion, nothing kept)."""
        import cv2

        cap = cv2.VideoCapture(str(path))
        n = 0
        while cap.grab():
            n += 1
        cap.release()
        return n

    @staticmethod
    def _read(path: Path) -> Iterator[np.ndarray]:
        import cv2

        cap = cv2.VideoCapture(str(path))
        try:
            while True:
                ok = cap.grab()
                if not ok:
                    return
                ok, bgr = cap.retrieve()
                if not ok:
                    return
                yield bgr
        finally:
            cap.release()

    def frames_rgb(self) -> Iterator[np.ndarray]:
        for bgr in self._read(self.path):
            yield np.ascontiguousarray(bgr[:, :, ::-1])

    @property
    def duration(self) -> float:
        return self.frames / self.fps


@dataclass
class ShotLandmarks:
    landmarks: np.ndarray  # (T,68,2) float32 frame pixels, NaN where no face
    found: np.ndarray      # (T,) bool
    score: np.ndarray      # (T,) detector score
    counted: int           # frames searched whole for a face count
    several: int           # of those, frames with two or more faces
    notes: list[str] = field(default_factory=list)


def _shape(gray, rect):
    from .dlib_models import dlib_models

    s = dlib_models().predictor(gray, rect)
    return np.array([[p.x, p.y] for p in s.parts()], np.float32)


def _detect_near(gray: np.ndarray, box):
    """Find the face again in a crop around last frame's box, scaled to FACE_PX; -> (rect, score) or None."""
    import cv2
    import dlib

    from .dlib_models import dlib_models

    x0, y0, x1, y1 = box
    size = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = gray.shape
    a0, b0 = int(max(0, cx - 1.5 * size)), int(max(0, cy - 1.5 * size))
    a1, b1 = int(min(w, cx + 1.5 * size)), int(min(h, cy + 1.5 * size))
    if a1 - a0 < 16 or b1 - b0 < 16:
        return None
    s = FACE_PX / max(size, 1.0)
    crop = cv2.resize(gray[b0:b1, a0:a1], (max(1, round((a1 - a0) * s)), max(1, round((b1 - b0) * s))),
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    rects, scores, _ = dlib_models().detector.run(crop, 0, 0.0)
    if len(rects) == 0:
        return None
    k = int(np.argmax([r.width() * r.height() for r in rects]))
    r = rects[k]
    rect = dlib.rectangle(int(round(a0 + r.left() / s)), int(round(b0 + r.top() / s)),
                          int(round(a0 + r.right() / s)), int(round(b0 + r.bottom() / s)))
    return rect, float(scores[k])


def _detect_all(gray: np.ndarray):
    """Every face on the whole frame (one upsampling when none is found on a small frame)."""
    from .dlib_models import dlib_models

    det = dlib_models().detector
    rects, scores, _ = det.run(gray, 0, 0.0)
    if len(rects) == 0 and max(gray.shape) <= 2048:
        rects, scores, _ = det.run(gray, 1, 0.0)  # faces under ~80 px need one upsampling
    return list(rects), list(scores)


def find_landmarks(shot: Shot, progress: Callable[[float, str], None] | None = None,
                   cancel: threading.Event | None = None) -> ShotLandmarks:
    import cv2

    t = shot.frames
    lms = np.full((t, 68, 2), np.nan, np.float32)
    found = np.zeros(t, bool)
    score = np.zeros(t, np.float32)
    counted = several = 0
    box = None
    misses = 0
    for i, bgr in enumerate(shot._read(shot.path)):
        if i >= t:
            break
        if cancel is not None and cancel.is_set():
            raise Cancelled("dub cancelled")
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        hit = None
        if i % COUNT_EVERY == 0 or box is None and misses % COUNT_EVERY == 0:
            rects, scores = _detect_all(gray)
            if i % COUNT_EVERY == 0:
                counted += 1
                several += len(rects) > 1
            if rects:
                k = int(np.argmax([r.width() * r.height() for r in rects]))
                hit = rects[k], float(scores[k])
        if hit is None and box is not None:
            hit = _detect_near(gray, box)
        if hit is None:
            misses += 1
            box = None
        else:
            misses = 0
            rect, sc = hit
            lms[i] = _shape(gray, rect)
            found[i], score[i] = True, sc
            box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        if progress is not None and i % 10 == 0:
            progress(i / t, "finding the face")
    notes = []
    if not found.any():
        raise NoFace(f"{shot.path.name}: no face found in any of its {t} frames")
    if counted and several / counted > MAX_MULTI_FACE:
        raise BadRequest(f"{shot.path.name}: two or more faces in {several} of {counted} sampled frames; "
                         "dubbing needs a shot of one face (crop the shot to the speaker first)")
    if several:
        notes.append(f"a second face in {several} of {counted} sampled frames: dubbed the largest")
    if (~found).any():
        notes.append(f"no face in {int((~found).sum())} of {t} frames: those frames are left as filmed")
    return ShotLandmarks(lms, found, score, counted, several, notes)


def smooth_landmarks(lms: np.ndarray, found: np.ndarray) -> np.ndarray:
    """[1 2 1]/4 over time where the neighbours have a face: dlib's one-pixel jitter, not motion."""
    out = lms.copy()
    t = len(lms)
    for i in range(t):
        if not found[i]:
            continue
        acc, wsum = 2.0 * lms[i], 2.0
        for j in (i - 1, i + 1):
            if 0 <= j < t and found[j]:
                acc, wsum = acc + lms[j], wsum + 1.0
        out[i] = acc / wsum
    return out
