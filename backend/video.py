"""Videos in: a cheap probe of a user's video file before anything decodes it.

`probe_video` asks the ffmpeg that imageio-ffmpeg ships for the container's header (no frame is
decoded) and refuses, in one line each: files ffmpeg cannot open (truncated, corrupt, not a
video), files without a video stream, frame rates that are not a positive finite number,
absurd sizes, videos longer than MAX_SECONDS, and videos whose decoded frames would not fit in
MAX_DECODED_BYTES when the caller holds a clip's frames in memory (`flowvq track` on a video; a shot
to dub and an actor's footage are read one frame at a time).
"""
from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BadImage, TooLarge, readable_file

MAX_SECONDS = 600.0  # as for audio: longer footage is cut into shots first
MAX_FPS = 1000.0
MAX_SIDE = 16384
MAX_DECODED_BYTES = 8 * 1024**3  # frames x width x height x 3 (RGB uint8)
SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    duration: float  # seconds
    has_audio: bool = False  # an audio stream beside the video

    @property
    def frames(self) -> int:
        return int(math.ceil(self.duration * self.fps))


def probe_video(path: str | Path, name: str | None = None, held: bool = True) -> VideoInfo:
    """Read a video's header; BadImage / TooLarge (with the limit named) when it cannot be used. `held`: the
    caller keeps every decoded frame (MAX_DECODED_BYTES applies); a reader that streams them passes False."""
    import imageio_ffmpeg

    path = readable_file(path, "video file", BadImage)
    label = name or str(path)
    if path.stat().st_size == 0:
        raise BadImage(f"{label} is empty")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise BadImage(f"{label}: reading the video's header took too long") from None
    return parse_probe(proc.stderr.decode(errors="replace"), label, held)


def parse_probe(text: str, label: str, held: bool = True) -> VideoInfo:
    """ffmpeg's description of its input -> VideoInfo, validated (split out for tests)."""
    streams = [ln for ln in text.splitlines() if re.search(r"Stream #\d+:\d+", ln)]
    if not streams:
        reason = next((ln.split(": ", 1)[-1].strip() for ln in reversed(text.splitlines())
                       if ln.strip() and "output file" not in ln.lower()), "unknown format")
        raise BadImage(f"{label} is not a video flowvq can read ({reason}); is it truncated "
                       "or corrupt?")
    video = next((ln for ln in streams if ": Video:" in ln), None)
    if video is None:
        raise BadImage(f"{label} has no video stream")
    size = re.search(r"[ ,](\d{1,6})x(\d{1,6})[ ,\[]", video + " ")
    if size is None:
        raise BadImage(f"{label}: the video stream has no frame size")
    w, h = int(size.group(1)), int(size.group(2))
    if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
        raise TooLarge(f"{label} has {w}x{h} frames; the limit is {MAX_SIDE} px per side")
    rate = re.search(r"([-\d.naifNAIF]+) (?:fps|tbr)", video)
    fps = _float(rate.group(1)) if rate else float("nan")
    if not (math.isfinite(fps) and 0 < fps <= MAX_FPS):
        raise BadImage(f"{label}: frame rate {rate.group(1) if rate else 'missing'} is not "
                       f"usable (a positive number up to {MAX_FPS:g} fps is needed)")
    dur = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", text)
    if dur is None:
        raise BadImage(f"{label} has no duration in its header; is it truncated or a live stream?")
    seconds = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3))
    info = VideoInfo(w, h, fps, seconds, any(": Audio:" in ln for ln in streams))
    if seconds > MAX_SECONDS:
        raise TooLarge(f"{label} is {seconds:.0f} s long; the limit is {MAX_SECONDS:g} s "
                       "(cut it into shorter shots)")
    need = info.frames * w * h * 3
    if held and need > MAX_DECODED_BYTES:
        fit = MAX_DECODED_BYTES // (w * h * 3)
        raise TooLarge(f"{label}: {info.frames} frames of {w}x{h} need {need / 2**30:.1f} GiB "
                       f"decoded; the limit is {MAX_DECODED_BYTES // 2**30} GiB (about {fit} "
                       "frames at this size: cut it shorter or scale it down)")
    return info


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return float("nan")
