"""Face detection + 68 landmarks with dlib (weights ship in face-recognition-models; nothing downloads)."""
from __future__ import annotations

import numpy as np

from .dlib_models import dlib_models


def detect_landmarks(rgb: np.ndarray, upsample: int = 0) -> tuple[np.ndarray | None, int, float]:
    """(68,2) landmarks of the largest face (or None), the number of faces, and the detector score."""
    models = dlib_models()
    detector, predictor = models.detector, models.predictor
    img = np.ascontiguousarray(rgb)
    rects, scores, _ = detector.run(img, upsample, 0.0)
    if len(rects) == 0 and upsample == 0 and max(img.shape[:2]) < 400:
        rects, scores, _ = detector.run(img, 1, 0.0)      # small faces need one upsampling
    if len(rects) == 0:
        return None, 0, 0.0
    k = int(np.argmax([r.width() * r.height() for r in rects]))
    shape = predictor(img, rects[k])
    pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], np.float32)
    return pts, len(rects), float(scores[k])
