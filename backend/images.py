"""Images in: file bytes or a path -> validated RGB uint8, with notes on what was changed."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BadImage, TooLarge

MIN_SIDE = 32
MAX_SIDE = 8192  # larger photos are downscaled to fit (and the caller is told)
MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Image:
    rgb: np.ndarray  # (H, W, 3) uint8
    notes: tuple[str, ...] = field(default=())


def load_image(source: str | Path | bytes, name: str | None = None) -> Image:
    """Decode an image file (PNG, JPEG, TIFF, WebP, BMP...) to RGB; BadImage says why not."""
    import cv2

    if isinstance(source, (bytes, bytearray)):
        data, label = bytes(source), name or "image data"
    else:
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise BadImage(f"image file not found: {path}")
        if path.stat().st_size > MAX_BYTES:
            raise TooLarge(f"{label} is larger than {MAX_BYTES // 2**20} MiB")
        data = path.read_bytes()
    if not data:
        raise BadImage(f"{label} is empty")
    if len(data) > MAX_BYTES:
        raise TooLarge(f"{label} is larger than {MAX_BYTES // 2**20} MiB")
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    notes: list[str] = []
    if img is not None:
        return Image(*_to_rgb(img, label, notes, bgr=True))
    img = _decode_with_imageio(data)
    if img is None:
        raise BadImage(f"{label} is not an image flowvq can read (PNG, JPEG, TIFF, WebP, BMP)")
    return Image(*_to_rgb(img, label, notes, bgr=False))


def _decode_with_imageio(data: bytes):
    """RGB(A) via imageio (Pillow): it reads a few files opencv refuses, e.g. CMYK TIFFs."""
    import io

    try:
        import imageio.v3 as iio

        img = iio.imread(io.BytesIO(data))
    except Exception:
        return None
    return img if isinstance(img, np.ndarray) and img.ndim in (2, 3) else None


def from_array(arr: np.ndarray, label: str = "image") -> Image:
    notes: list[str] = []
    return Image(*_to_rgb(np.asarray(arr), label, notes, bgr=False))


def _to_rgb(img: np.ndarray, label: str, notes: list[str], bgr: bool = True):
    import cv2

    if img.dtype == np.uint16:
        img = (img / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype.kind == "f":
        img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise BadImage(f"{label}: unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
        notes.append("grayscale image converted to RGB")
    elif img.ndim == 3 and img.shape[2] == 4:
        # composite over mid-grey: a transparent background must not turn black around the hair
        a = img[:, :, 3:4].astype(np.float32) / 255.0
        img = (img[:, :, :3] * a + 128 * (1 - a) + 0.5).astype(np.uint8)
        notes.append("alpha channel composited over grey")
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.ndim != 3 or img.shape[2] != 3:
        raise BadImage(f"{label}: unsupported image layout {list(img.shape)}")
    if bgr:
        img = img[:, :, ::-1]
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise BadImage(f"{label} is {w}x{h} px; a face needs at least {MIN_SIDE} px per side")
    if max(h, w) > MAX_SIDE:
        s = MAX_SIDE / max(h, w)
        img = cv2.resize(np.ascontiguousarray(img), (round(w * s), round(h * s)),
                         interpolation=cv2.INTER_AREA)
        notes.append(f"downscaled from {w}x{h} to {img.shape[1]}x{img.shape[0]} "
                     f"(limit {MAX_SIDE} px)")
    return np.ascontiguousarray(img), tuple(notes)
