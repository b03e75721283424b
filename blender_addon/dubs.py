"""Dubs of movie strips, bpy-free: where a dub's frames go, its names, its request, its strip.

A dub never overwrites what is there: each gets a new numbered folder (made with an exclusive
mkdir, so two dubs never share one) and a strip name no strip has. Frames arrive one file each
(plates.FrameWriter: written under a temporary name, then renamed); the strip is added only once
every frame of the shot is in, and a failed or cancelled dub removes its own folder. The
functions that edit the sequencer take the scene and run on the main thread.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

from ._shared import messages, settings

FOLDER = "flowvq_dubs"  # beside the .blend (in the temporary folder while it is unsaved)
MAX_NUMBER = 9999
SHOT_UPLOAD = "shot"  # upload ids: one connection per job, so fixed ids are enough
LINE_UPLOAD = "line"


def dubs_root(blend_path: str, chosen: str = "") -> Path:
    """The folder that holds the numbered dub folders: `chosen` (absolute) if given, else
    flowvq_dubs beside the .blend, or in the temporary folder when the .blend is unsaved."""
    if chosen:
        return Path(chosen)
    if blend_path:
        return Path(blend_path).parent / FOLDER
    return Path(tempfile.gettempdir()) / FOLDER


def safe_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] or "shot"


def new_folder(root: Path, stem: str) -> tuple[Path, int]:
    """A new, empty folder root/<stem>_dub_NNN and its number: the lowest number above every
    existing one (a dub's number never goes back to a deleted one's)."""
    root.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(stem) + r"_dub_(\d+)$")
    used = [int(m.group(1)) for p in root.iterdir() if (m := pattern.match(p.name))]
    for n in range(max(used, default=0) + 1, MAX_NUMBER + 1):
        folder = root / f"{stem}_dub_{n:03d}"
        try:
            folder.mkdir()  # exclusive: another dub that took this number gets FileExistsError
        except FileExistsError:
            continue
        return folder, n
    raise OSError(f"{root} already holds {MAX_NUMBER} dubs of '{stem}'")


def unique_name(base: str, taken) -> str:
    """`base`, or `base 2`, `base 3`... : a name no strip has (Blender's own renaming would
    make `.001` names, and a name once used may be what the artist's scripts look up)."""
    taken = set(taken)
    if base not in taken:
        return base
    k = 2
    while f"{base} {k}" in taken:
        k += 1
    return f"{base} {k}"


def upload_name(path: str, fallback: str) -> str:
    """A plain file name for an upload (the backend reads its extension)."""
    name = os.path.basename(path or "") or fallback
    stem, ext = os.path.splitext(name)
    return (stem[: 200 - len(ext[:20])] + ext[:20]) if len(name) > 200 else name


def request(s: settings.GenerateSettings, fmt: str, take=None) -> dict:
    """The `dub` request: the shot and (without a take) the line are uploads of the same job."""
    line = {"take": take.to_wire()} if take is not None else {"audio_upload": LINE_UPLOAD}
    msg = {"type": "dub", "id": "dub", **s.to_wire(), "shot": SHOT_UPLOAD, "format": fmt, **line}
    messages.Dub.from_wire(msg)  # the contract's checks, here: a bad take fails before uploading
    del msg["id"]  # the job gives its own
    return msg


def rate_note(movie_fps: float, scene_fps: float, movie_frames: int) -> str:
    """What a movie at another frame rate than the scene means for the dub (empty when equal)."""
    if math.isclose(movie_fps, scene_fps, rel_tol=1e-4):
        return ""
    return (f"the movie is {movie_fps:g} fps and the scene {scene_fps:g} fps: like its movie strip, "
            f"the dub shows one shot frame per scene frame ({movie_frames} frames, "
            f"{movie_frames / scene_fps:.2f} s at the scene's rate instead of "
            f"{movie_frames / movie_fps:.2f} s), so a sound strip of the line will drift from it")


def free_channel(strips, above: int, start: int, end: int) -> int:
    """The first channel above `above` with no strip overlapping frames [start, end)."""
    for channel in range(above + 1, 129):
        if not any(s.channel == channel and s.frame_final_start < end and s.frame_final_end > start
                   for s in strips):
            return channel
    raise ValueError("no free channel above the movie strip (all 128 are used over its frames)")


def add_dub_strip(scene, movie, files: list[str], name: str):
    """An image strip of `files` on the first free channel above `movie`, aligned with it: the
    same first frame and length, and the same trim (so it shows the same part of the shot)."""
    if not files:
        raise ValueError("no frames to load")
    files = sorted(files)
    se = scene.sequence_editor
    start = int(round(movie.frame_start))
    channel = free_channel(list(se.strips), movie.channel, start, start + len(files))
    strip = se.strips.new_image(name=name, filepath=files[0], channel=channel, frame_start=start)
    try:
        for f in files[1:]:
            strip.elements.append(os.path.basename(f))
        strip.frame_offset_start = movie.frame_offset_start
        strip.frame_offset_end = movie.frame_offset_end
    except Exception:  # never leave half a strip behind (the dub's folder goes with a failure)
        se.strips.remove(strip)
        raise
    return strip


def write_sidecar(folder: str, doc: dict) -> None:
    """dub.json beside the frames: what was dubbed with what (written whole, then renamed)."""
    path = Path(folder) / "dub.json"
    tmp = path.with_name(".dub.json.part")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(tmp, path)


def discard(folder: str) -> None:
    """Remove a dub's folder made by new_folder (only ever ours: numbered and made empty)."""
    shutil.rmtree(folder, ignore_errors=True)
