"""Images in: file bytes or a path -> validated RGB uint8, with notes on what was changed.

Decoded with Pillow, which reads the header first: the pixel count is checked against MAX_PIXELS
before a byte of pixel data is decompressed, so a 100 KB PNG that claims 30000 x 30000 pixels
(a decompression bomb: 2.7 GB decoded) is refused at once. Truncated or corrupt files are refused
(Pillow does not invent the missing part). opencv reads the few formats Pillow does not know
(EXR, Radiance HDR, PFM), under the same pixel limit.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BadImage, TooLarge, readable_file

MIN_SIDE = 32
MAX_SIDE = 8192  # larger photos are downscaled to fit (and the caller is told)
MAX_BYTES = 256 * 1024 * 1024  # file size
MAX_PIXELS = 100_000_000  # 100 Mpx (e.g. 10000 x 10000), from the header, before decoding
FORMATS = "PNG, JPEG, TIFF, WebP, BMP, GIF, EXR"
# signatures of the formats only opencv reads: OpenEXR, Radiance HDR, PFM
OPENCV_ONLY = (b"\x76\x2f\x31\x01", b"#?RADIANCE", b"#?RGBE", b"PF\n", b"Pf\n")

# opencv reads this when it first decodes: its own ceiling is 2^30 pixels
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))


@dataclass(frozen=True)
class Image:
    rgb: np.ndarray  # (H, W, 3) uint8
    notes: tuple[str, ...] = field(default=())


def load_image(source: str | Path | bytes, name: str | None = None) -> Image:
    """Decode an image file (PNG, JPEG, TIFF, WebP, BMP...) to RGB; BadImage / TooLarge say why not."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "image data"
    else:
        path = readable_file(source, "image file", BadImage)
        label = name or str(path)
        if path.stat().st_size > MAX_BYTES:
            raise TooLarge(f"{label} is larger than the limit of {MAX_BYTES // 2**20} MiB")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise BadImage(f"cannot read {path}: {e.strerror or e}") from None
    if not data:
        raise BadImage(f"{label} is empty")
    if len(data) > MAX_BYTES:
        raise TooLarge(f"{label} is larger than the limit of {MAX_BYTES // 2**20} MiB")
    notes: list[str] = []
    img = _decode_with_pillow(data, label, notes)
    if img is not None:
        return Image(*_to_rgb(img, label, notes, bgr=False))
    if not data.startswith(OPENCV_ONLY):  # opencv would only repeat Pillow's verdict, noisily
        raise BadImage(f"{label} is not an image flowvq can read ({FORMATS})")
    img = _decode_with_opencv(data, label)
    return Image(*_to_rgb(img, label, notes, bgr=True))


def check_image_file(path: str | Path, name: str | None = None) -> tuple[int, int]:
    """Cheap check of an image file without decoding it: readable, known format, within the
    pixel limit. -> (width, height). For entry points that decode the file themselves."""
    path = readable_file(path, "image file", BadImage)
    label = name or str(path)
    if path.stat().st_size == 0:
        raise BadImage(f"{label} is empty")
    if path.stat().st_size > MAX_BYTES:
        raise TooLarge(f"{label} is larger than the limit of {MAX_BYTES // 2**20} MiB")
    from PIL import Image as PILImage, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            with PILImage.open(path) as im:
                w, h = im.size
        except PILImage.DecompressionBombError as e:
            raise TooLarge(_bomb_message(label, e)) from None
        except UnidentifiedImageError:
            raise BadImage(f"{label} is not an image flowvq can read ({FORMATS})") from None
        except (OSError, ValueError, SyntaxError, EOFError) as e:
            raise BadImage(f"{label} is truncated or corrupt ({e})") from None
    _check_pixels(w, h, label)
    return w, h


def _check_pixels(w: int, h: int, label: str) -> None:
    if w <= 0 or h <= 0:
        raise BadImage(f"{label} says it is {w}x{h} pixels")
    if w * h > MAX_PIXELS:
        raise TooLarge(f"{label} is {w}x{h} pixels ({w * h / 1e6:.0f} Mpx); the limit is "
                       f"{MAX_PIXELS / 1e6:.0f} Mpx (scale it down first)")


def _bomb_message(label: str, e: Exception) -> str:
    m = re.search(r"\((\d+) pixels\)", str(e))
    size = f"{int(m.group(1)) / 1e6:.0f} Mpx" if m else "too many pixels"
    return f"{label} has {size}; the limit is {MAX_PIXELS / 1e6:.0f} Mpx (scale it down first)"


def _decode_with_pillow(data: bytes, label: str, notes: list[str]) -> np.ndarray | None:
    """-> RGB(A)/gray array, or None when Pillow does not know the format."""
    from PIL import Image as PILImage, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            im = PILImage.open(io.BytesIO(data))
        except PILImage.DecompressionBombError as e:
            raise TooLarge(_bomb_message(label, e)) from None
        except UnidentifiedImageError:
            return None
        except (OSError, ValueError, SyntaxError, EOFError) as e:
            raise BadImage(f"{label} is truncated or corrupt ({e})") from None
        with im:
            _check_pixels(*im.size, label)
            if getattr(im, "n_frames", 1) > 1:
                notes.append(f"the first of {im.n_frames} frames was used")
            try:
                im.load()
                return _pillow_to_array(im)
            except PILImage.DecompressionBombError as e:
                raise TooLarge(_bomb_message(label, e)) from None
            except (OSError, ValueError, SyntaxError, EOFError) as e:
                raise BadImage(f"{label} is truncated or corrupt ({e})") from None


def _pillow_to_array(im) -> np.ndarray:
    mode = im.mode
    if mode in ("RGB", "RGBA", "L"):
        return np.asarray(im)
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    if mode == "I":
        return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    if mode == "F":
        return np.asarray(im, dtype=np.float32)
    if mode in ("LA", "La", "PA", "RGBa") or (mode == "P" and "transparency" in im.info):
        return np.asarray(im.convert("RGBA"))  # 2-channel gray + alpha included
    if mode == "1":
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGB"))  # P, CMYK, YCbCr, LAB, HSV


def _decode_with_opencv(data: bytes, label: str) -> np.ndarray:
    import cv2

    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as e:  # e.g. over opencv's pixel limit
        raise BadImage(f"{label} cannot be decoded ({str(e).strip().splitlines()[-1]})") from None
    if img is None:
        raise BadImage(f"{label} is not an image flowvq can read ({FORMATS})")
    _check_pixels(img.shape[1], img.shape[0], label)
    return img


def from_array(arr: np.ndarray, label: str = "image") -> Image:
    notes: list[str] = []
    return Image(*_to_rgb(np.asarray(arr), label, notes, bgr=False))


def _to_rgb(img: np.ndarray, label: str, notes: list[str], bgr: bool = True):
    import cv2

    if img.dtype == np.uint16:
        img = (img / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype.kind == "f":
        img = (np.clip(np.nan_to_num(img), 0, 1) * 255 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise BadImage(f"{label}: unsupported pixel type {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 2:  # gray + alpha as a raw array
        img = np.dstack([img[:, :, 0]] * 3 + [img[:, :, 1]])
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
        raise BadImage(f"{label}: unsupported image layout {list(img.shape)} "
                       "(gray, gray + alpha, RGB or RGBA)")
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
