"""Plate files: numbered PNG (8/16 bit) or OpenEXR frames written atomically, an mp4 with audio."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # read by OpenCV when the EXR codec is first used

FORMATS = ("png", "png16", "exr")
SUFFIX = {"png": ".png", "png16": ".png", "exr": ".exr"}


def frame_name(index: int, fmt: str) -> str:
    """1-based, zero-padded: frame_00001.png."""
    return f"frame_{index + 1:05d}{SUFFIX[fmt]}"


def srgb_to_linear(rgb_u8: np.ndarray) -> np.ndarray:
    """EXR holds scene-linear light (what compositors expect), not sRGB-encoded values."""
    c = rgb_u8.astype(np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def encode(rgb: np.ndarray, fmt: str) -> tuple[np.ndarray, list[int]]:
    import cv2

    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    if fmt == "png":
        return bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3]
    if fmt == "png16":
        return bgr.astype(np.uint16) * 257, [cv2.IMWRITE_PNG_COMPRESSION, 3]
    if fmt == "exr":
        return srgb_to_linear(bgr), [cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_HALF]
    raise ValueError(f"unknown plate format {fmt!r}; use one of {', '.join(FORMATS)}")


def write_frame(out_dir: Path, index: int, rgb: np.ndarray, fmt: str) -> Path:
    """Write to a temporary name, then rename: a killed render leaves only complete frames."""
    import cv2

    path = Path(out_dir) / frame_name(index, fmt)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    img, params = encode(rgb, fmt)
    if not cv2.imwrite(str(tmp), img, params):
        raise OSError(f"could not write {tmp}")
    tmp.replace(path)
    return path


def read_frame(path: Path) -> np.ndarray:
    """RGB uint8 back from any plate format (for mp4 assembly on resume and for tests)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"cannot read {path}")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype == np.float32 or img.dtype == np.float16:
        c = np.clip(img.astype(np.float32), 0, 1)
        c = np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)
        img = (c * 255.0).round().astype(np.uint8)
    return np.ascontiguousarray(img[:, :, ::-1])


def complete_frames(out_dir: Path, fmt: str, n: int) -> list[bool]:
    out_dir = Path(out_dir)
    return [(out_dir / frame_name(i, fmt)).is_file() for i in range(n)]


class Mp4Writer:
    """H.264 mp4 through the ffmpeg that imageio-ffmpeg ships; audio muxed when given."""

    def __init__(self, path: Path, width: int, height: int, fps: float, n_frames: int, audio_path=None):
        import imageio_ffmpeg

        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp.mp4")
        kw = {}
        if audio_path is not None:
            # the video sets the length: a longer sound is cut there, a shorter one ends in silence
            # (not -shortest, which would make ffmpeg close the pipe while frames still come)
            kw = dict(audio_path=str(audio_path), audio_codec="aac", output_params=["-t", f"{n_frames / fps:.6f}"])
        # even sizes for yuv420p; macro_block_size=2 pads at most one pixel instead of rescaling
        self._gen = imageio_ffmpeg.write_frames(str(self.tmp), (width, height), fps=float(fps), codec="libx264",
                                                pix_fmt_in="rgb24", pix_fmt_out="yuv420p", macro_block_size=2,
                                                quality=8, ffmpeg_log_level="error", **kw)
        self._gen.send(None)

    def add(self, rgb: np.ndarray) -> None:
        self._gen.send(np.ascontiguousarray(rgb).tobytes())

    def close(self) -> Path:
        self._gen.close()
        self.tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._gen.close()
        finally:
            self.tmp.unlink(missing_ok=True)
