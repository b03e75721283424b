"""Plate measurements with dlib (offline models from face_recognition_models): face found,
68 landmarks, 128-d identity embedding, inner-lip gap, face-region sharpness."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .mouth import lip_gap

IDENTITY_THRESHOLD = 0.45  # dlib's own same-person distance is 0.6; the plates must do better


@dataclass(frozen=True)
class FaceMeasure:
    found: bool
    landmarks: np.ndarray | None = None  # (68,2)
    embedding: np.ndarray | None = None  # (128,)
    box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1

    @property
    def lip_gap(self) -> float:
        """Inner-lip opening over the outer-eye-corner distance (evaluate.mouth.lip_gap)."""
        return float(lip_gap(self.landmarks[None])[0])


def measure_face(rgb: np.ndarray, upsample: int = 0, embed: bool = True) -> FaceMeasure:
    """The largest face dlib finds in an RGB uint8 image."""
    from ..tracker.dlib_models import dlib_models

    models = dlib_models()
    det, sp = models.detector, models.predictor
    img = np.ascontiguousarray(rgb)
    rects = det(img, upsample)
    if len(rects) == 0 and upsample == 0:
        rects = det(img, 1)
    if len(rects) == 0:
        return FaceMeasure(False)
    r = max(rects, key=lambda r: r.width() * r.height())
    shape = sp(img, r)
    lm = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float32)
    emb = np.array(models.recogniser.compute_face_descriptor(img, shape), np.float32) if embed else None
    box = (max(r.left(), 0), max(r.top(), 0), min(r.right(), img.shape[1]), min(r.bottom(), img.shape[0]))
    return FaceMeasure(True, lm, emb, box)


def identity_distance(a: FaceMeasure, b: FaceMeasure) -> float:
    return float(np.linalg.norm(a.embedding - b.embedding))


def face_sharpness(rgb: np.ndarray, landmarks: np.ndarray, exclude_mouth: bool = True) -> float:
    """Variance of the Laplacian inside the landmarks' convex hull (grey, float). The mouth is
    left out by default: a synthesised mouth interior (dark cavity, teeth) adds strong edges that
    would inflate the number without anything getting sharper."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    mask = np.zeros(grey.shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(landmarks.astype(np.int32)), 1)
    if exclude_mouth:
        mouth = landmarks[48:60]
        c = mouth.mean(0)
        grown = (c + 1.6 * (mouth - c)).astype(np.int32)  # the lips plus room for an open jaw
        cv2.fillConvexPoly(mask, cv2.convexHull(grown), 0)
    return float(lap[mask > 0].var()) if mask.any() else 0.0


def pearson(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def plate_report(portrait: np.ndarray, plates, mouth_opening) -> dict:
    """The must-show numbers for a plate sequence against its portrait and the take's mouth
    opening curve (e.g. jawOpen per frame)."""
    ref = measure_face(portrait)
    if not ref.found:
        raise ValueError("no face in the portrait")
    ref_sharp = face_sharpness(portrait, ref.landmarks)
    dists, gaps, sharp, lost, sizes_ok = [], [], [], 0, True
    for frame in plates:
        sizes_ok &= frame.shape == portrait.shape
        m = measure_face(frame)
        if not m.found:
            lost += 1
            gaps.append(np.nan)
            continue
        dists.append(identity_distance(ref, m))
        gaps.append(m.lip_gap)
        sharp.append(face_sharpness(frame, m.landmarks))
    gaps = np.array(gaps)
    ok = np.isfinite(gaps)
    opening = np.asarray(mouth_opening, float)[: len(gaps)]
    return {
        "frames": int(len(gaps)),
        "same_resolution": bool(sizes_ok),
        "faces_lost": int(lost),
        "identity_distance_max": float(np.max(dists)) if dists else float("nan"),
        "identity_distance_mean": float(np.mean(dists)) if dists else float("nan"),
        "lip_gap_correlation": pearson(gaps[ok], opening[ok]) if ok.sum() > 2 else float("nan"),
        "sharpness_ratio_min": float(np.min(sharp) / ref_sharp) if sharp else float("nan"),
        "sharpness_ratio_mean": float(np.mean(sharp) / ref_sharp) if sharp else float("nan"),
    }
