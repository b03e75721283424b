"""Plates: write the backend's rendered frames into a folder, then show them in the VSE.

`FrameWriter` runs on the worker thread (plain file IO, no bpy) so frames never pile up in
memory; `add_image_strip` runs on the main thread once the render has finished.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

EXTENSIONS = {"png": "png", "png16": "png", "exr": "exr"}


@dataclass(frozen=True)
class FrameWriter:
    folder: str
    prefix: str = "plate_"
    first: int = 0  # the number of frame 0 in file names (1 for dubs, as `flowvq dub` names them)

    def path(self, index: int, fmt: str) -> Path:
        return Path(self.folder) / f"{self.prefix}{index + self.first:05d}.{EXTENSIONS.get(fmt, 'png')}"

    def __call__(self, msg: dict) -> str:
        image = msg.get("image")
        if not isinstance(image, (bytes, bytearray)):
            raise ValueError("frame message carries no image bytes")
        path = self.path(int(msg.get("index", 0)), str(msg.get("format", "png")))
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(image)
        os.replace(tmp, path)  # a half-written frame never carries the final name
        return str(path)


def add_image_strip(scene, files: list[str], frame_start: int, name: str = "FlowVQ plates"):
    """An image strip over `files` (sorted by frame) from `frame_start`, on a free channel.

    Main thread only (it edits the scene's sequencer).
    """
    if not files:
        raise ValueError("no frames to load")
    files = sorted(files)
    se = scene.sequence_editor or scene.sequence_editor_create()
    used = {s.channel for s in se.strips}
    channel = next(c for c in range(2, 128) if c not in used)
    strip = se.strips.new_image(name=name, filepath=files[0], channel=channel,
                                frame_start=frame_start)
    for f in files[1:]:
        strip.elements.append(os.path.basename(f))
    return strip
