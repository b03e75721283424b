"""Render plates of the active take through the backend, then load them in the VSE."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import bpy
from bpy.props import IntProperty

from . import plates, takes, tasks
from .connection import UserError
from .ops_generate import target_of


@dataclass(frozen=True)
class PlateSpec:
    scene: str
    folder: str
    frame_start: int
    files: list = field(default_factory=list)  # filled from frame events (main thread)

    def on_frame(self, payload) -> None:
        self.files.append(payload)

    def apply(self, result: dict) -> str:
        scene = bpy.data.scenes[self.scene]
        strip = plates.add_image_strip(scene, self.files, self.frame_start)
        return (f"{len(self.files)} plate frames ({result.get('width')}x{result.get('height')}) "
                f"in {self.folder}; image strip '{strip.name}' on channel {strip.channel}")


class FLOWVQ_OT_render_plates(tasks.JobOperator, bpy.types.Operator):
    """Render the active take from the portrait into an image sequence and load it in the VSE"""
    bl_idname = "flowvq.render_plates"
    bl_label = "Render Plates"
    max_side: IntProperty(name="Max Side", default=0, min=0, options={"SKIP_SAVE"},
                          description="0 = the portrait's resolution")

    def execute(self, context):
        scene = context.scene
        s = scene.flowvq
        obj = target_of(context)
        try:
            if obj is None or not (0 <= obj.flowvq.active_take < len(obj.flowvq.takes)):
                raise UserError("no active take: generate takes first")
            item = obj.flowvq.takes[obj.flowvq.active_take]
            exp, pose = takes.raw_curves(item.shape_action)
            if pose is None:
                raise UserError("the active take has no head pose curves")
            portrait = bpy.path.abspath(s.portrait)
            if not os.path.isfile(portrait):
                raise UserError(f"portrait '{s.portrait}' does not exist")
            folder = Path(bpy.path.abspath(s.plate_dir)) / item.name.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
        except (UserError, takes.TakeError, OSError) as e:
            return tasks.fail(self, str(e))
        request = {"type": "render", "portrait": Path(portrait).read_bytes(), "expression": exp,
                   "pose": pose, "fps": float(item.fps), "format": s.plate_format,
                   "max_side": self.max_side}
        spec = PlateSpec(scene.name, str(folder), item.frame_start)
        return tasks.start(self, context, request, spec, self.blocking, self.timeout,
                           on_frame=plates.FrameWriter(str(folder)))


classes = (FLOWVQ_OT_render_plates,)
