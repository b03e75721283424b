"""Read what the tracker is given (image, video, array, frame list) as RGB uint8 frames."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from flowvq.errors import BadImage, BadRequest

MIN_SIDE, MAX_SIDE = 32, 8192
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}


def to_rgb(img: np.ndarray) -> np.ndarray:
    """Grayscale, RGBA or RGB array -> RGB uint8."""
    img = np.asarray(img)
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.max() <= 1.0:
            img = img * 255.0
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise BadImage(f"expected an (H,W), (H,W,3) or (H,W,4) image, got shape {img.shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def check_size(img: np.ndarray, notes: list[str]) -> np.ndarray:
    """Refuse tiny images; shrink huge ones to fit MAX_SIDE (noted)."""
    h, w = img.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise BadImage(f"image is {w}x{h} pixels; the tracker needs at least {MIN_SIDE} pixels per side")
    if max(h, w) > MAX_SIDE:
        import cv2

        s = MAX_SIDE / max(h, w)
        img = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
        notes.append(f"image {w}x{h} was downscaled by {s:.3f} to fit {MAX_SIDE} pixels")
    return img


def read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("RGB", "L", "RGBA"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")      # CMYK, P, I;16 ...
            return to_rgb(np.asarray(im))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadImage(f"cannot read image {path.name}: {exc}") from None


def iter_video(path: Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """A video's RGB uint8 frames one at a time (minutes of 1080p are tens of GB as a list)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise BadImage(f"cannot open video {path.name}")
    try:
        n = 0
        while max_frames is None or n < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            n += 1
            yield np.ascontiguousarray(bgr[:, :, ::-1])
    finally:
        cap.release()


def read_video(path: Path, max_frames: int | None = None) -> tuple[list[np.ndarray], float]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise BadImage(f"cannot open video {path.name}")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    cap.release()
    frames = list(iter_video(path, max_frames))
    if not frames:
        raise BadImage(f"video {path.name} has no readable frames")
    return frames, fps if fps > 0 else 25.0


def load_frames(source, fps: float | None = None, max_frames: int | None = None):
    """-> (frames list of RGB uint8, fps (0 for a still), notes)."""
    notes: list[str] = []
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise BadRequest(f"no such file: {path}")
        if path.suffix.lower() in VIDEO_SUFFIXES:
            frames, vfps = read_video(path, max_frames)
            return [check_size(f, notes) for f in frames], float(fps or vfps), notes
        return [check_size(read_image(path), notes)], 0.0, notes
    if isinstance(source, np.ndarray) and source.ndim in (2, 3) and (source.ndim == 2 or source.shape[-1] in (1, 3, 4)):
        return [check_size(to_rgb(source), notes)], 0.0, notes
    frames = [check_size(to_rgb(f), notes) for f in source]
    if not frames:
        raise BadRequest("no frames given")
    notes = sorted(set(notes))
    return frames[:max_frames] if max_frames else frames, float(fps or (25.0 if len(frames) > 1 else 0.0)), notes
