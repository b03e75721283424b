"""Tracked curves of a video, cached on disk (never in the repo): tracking is the slow part (~10-40 s
per short clip here), and evaluation, emotion learning and tests track the same clips again and again."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


def cache_root() -> Path:
    return Path(os.environ.get("FLOWVQ_CACHE", Path.home() / ".cache" / "flowvq"))


def tracker_fingerprint() -> str:
    """Hash of the tracker's source files (what tracked curves depend on besides the video): a changed
    fit (e.g. the mouth fit of issue #14) re-tracks instead of reading curves the old tracker made."""
    h = hashlib.sha256()
    for f in sorted(Path(__file__).resolve().parent.glob("*.py")):
        if f.name != "cache.py":  # this file does not change what a track is
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def tracked_expression(path) -> tuple[np.ndarray, float]:
    """(expression (T, 64), fps) of a video from the project's tracker, cached per video and tracker."""
    from .track import track

    path = Path(path)
    key = hashlib.sha256(path.read_bytes() + tracker_fingerprint().encode()).hexdigest()[:24]
    cached = cache_root() / "tracked" / f"{key}.npz"
    if cached.exists():
        with np.load(cached) as z:
            return z["expression"], float(z["fps"])
    r = track(str(path))
    exp, fps = np.asarray(r.expression, np.float32), float(r.fps)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, expression=exp, fps=fps)
    tmp.replace(cached)
    return exp, fps
