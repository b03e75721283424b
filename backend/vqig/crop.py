"""The square face crop VQIG works on, and pasting a refined crop back (inference and training)."""
from __future__ import annotations

import numpy as np


def face_box(landmarks: np.ndarray, scale: float = 1.9) -> tuple[float, float, float]:
    """The square VQIG works on: centred between the eyes and the mouth, `scale` times the
    landmarks' extent (face plus some hair and neck). -> (cx, cy, side) in image pixels."""
    lm = np.asarray(landmarks, np.float32)
    lo, hi = lm.min(0), lm.max(0)
    c = 0.5 * (lm[36:48].mean(0) + lm[48:68].mean(0))
    side = float(scale * max(hi - lo))
    return float(c[0]), float(c[1] - 0.05 * side), side


def _crop_matrix(box, size: int) -> np.ndarray:
    cx, cy, side = box
    s = size / side
    return np.float32([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]])


def crop_face(img: np.ndarray, box, size: int) -> np.ndarray:
    """(size,size,3) crop of `box`; outside the image is reflected."""
    import cv2

    return cv2.warpAffine(img, _crop_matrix(box, size), (size, size), flags=cv2.INTER_AREA if box[2] > size else cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT)


def paste_face(img: np.ndarray, crop: np.ndarray, box, feather: float = 0.12) -> np.ndarray:
    """Blend `crop` back into `img` over `box` with a feathered square mask (width `feather`
    of the side), at the image's own resolution."""
    import cv2

    size = crop.shape[0]
    h, w = img.shape[:2]
    m = _crop_matrix(box, size)
    inv = cv2.invertAffineTransform(m)
    back = cv2.warpAffine(crop, inv, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    t = np.linspace(0, 1, size, dtype=np.float32)
    ramp = np.clip(np.minimum(t, 1 - t) / feather, 0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)
    mask = cv2.warpAffine(np.outer(ramp, ramp), inv, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    out = img.astype(np.float32) * (1 - mask[..., None]) + back.astype(np.float32) * mask[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
