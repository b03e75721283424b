"""Training data of VQIG: face crops of clips with their curves and geometry-warped inputs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadRequest


@dataclass(frozen=True)
class PlateData:
    """frames[i]: real crop of frame i; warped[i]: the clip's source crop warped by the geometry
    renderer to frame i's curves; coeffs[i]: [expression 64, pose 6]; clip[i]: which clip;
    sources[c]: clip c's source crop (its first frame, the portrait of a plate)."""

    frames: np.ndarray  # (N,S,S,3) uint8
    warped: np.ndarray  # (N,S,S,3) uint8
    coeffs: np.ndarray  # (N,70) float32
    clip: np.ndarray  # (N,) int64
    sources: np.ndarray  # (C,S,S,3) uint8

    def __post_init__(self):
        n = len(self.frames)
        if not (len(self.warped) == len(self.coeffs) == len(self.clip) == n) or n == 0:
            raise BadRequest("PlateData arrays must be non-empty and of equal length")
        if np.any(np.diff(self.clip) < 0):
            raise BadRequest("PlateData frames must be grouped by clip")

    def __len__(self) -> int:
        return len(self.frames)

    def clip_range(self, i: int) -> tuple[int, int]:
        c = self.clip[i]
        return int(np.searchsorted(self.clip, c, "left")), int(np.searchsorted(self.clip, c, "right"))

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, frames=self.frames, warped=self.warped, coeffs=self.coeffs, clip=self.clip,
                 sources=self.sources)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "PlateData":
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(**{k: z[k] for k in ("frames", "warped", "coeffs", "clip", "sources")})
        except (OSError, KeyError, ValueError) as e:
            raise BadRequest(f"not a VQIG dataset: {path} ({e})") from None

    @staticmethod
    def concat(parts: list["PlateData"]) -> "PlateData":
        offs = np.cumsum([0] + [len(p.sources) for p in parts[:-1]])
        return PlateData(np.concatenate([p.frames for p in parts]), np.concatenate([p.warped for p in parts]),
                         np.concatenate([p.coeffs for p in parts]),
                         np.concatenate([p.clip + o for p, o in zip(parts, offs)]),
                         np.concatenate([p.sources for p in parts]))


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
