"""The animator's way out and in: export a take (.glb, .fbx, Live Link Face .csv), import a
Live Link Face capture as a take beside the generated ones."""
from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty

from . import results, takes, tasks
from ._shared import livelink, protocol
from .connection import UserError
from .ops_generate import calibration_of, pose_target_of, scene_fps, target_of

EXPORT_FORMATS = {".glb": "glTF binary (Blender's glTF exporter)",
                  ".fbx": "FBX (Blender's FBX exporter)",
                  ".csv": "Live Link Face CSV"}


def _chosen_item(obj, index: int):
    if obj is None or not len(obj.flowvq.takes):
        raise UserError("nothing to export: the target has no takes")
    index = index if index >= 0 else obj.flowvq.active_take
    if not 0 <= index < len(obj.flowvq.takes):
        raise UserError("nothing to export: no active take (click one in the take list)")
    return index, obj.flowvq.takes[index]


class _Selection:
    """Select only `objects` (and restore the selection, the active object and the frame range
    afterwards): Blender's exporters work on the selection and the scene range."""

    def __init__(self, context, objects, frame_range):
        self.context, self.objects, self.frame_range = context, objects, frame_range

    def __enter__(self):
        vl, scene = self.context.view_layer, self.context.scene
        self.saved = [(o, o.select_get()) for o in vl.objects]
        self.active = vl.objects.active
        self.range = (scene.frame_start, scene.frame_end)
        for o in vl.objects:
            o.select_set(o in self.objects)
        vl.objects.active = self.objects[0]
        scene.frame_start, scene.frame_end = self.frame_range
        return self

    def __exit__(self, *exc):
        vl, scene = self.context.view_layer, self.context.scene
        for o, sel in self.saved:
            o.select_set(sel)
        vl.objects.active = self.active
        scene.frame_start, scene.frame_end = self.range


def export_blender(context, obj, item, path: str, ext: str) -> None:
    """Export the take's Actions with Blender's own exporter (assigned for the export)."""
    ids = [obj] + ([item.pose_object] if item.pose_object is not None
                   and item.pose_object != obj else [])
    rng = (item.frame_start, item.frame_start + item.frames - 1)
    with _Selection(context, ids, rng):
        if ext == ".glb":
            result = bpy.ops.export_scene.gltf(
                filepath=path, export_format="GLB", use_selection=True, export_animations=True,
                export_morph=True, export_morph_animation=True,
                export_animation_mode="ACTIVE_ACTIONS", export_force_sampling=True,
                export_frame_range=True, export_optimize_animation_size=False,
                export_anim_slide_to_zero=False)
        else:
            result = bpy.ops.export_scene.fbx(
                filepath=path, use_selection=True, bake_anim=True,
                bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
                bake_anim_force_startend_keying=True, add_leaf_bones=False)
    if result != {"FINISHED"}:
        raise UserError(f"Blender's {ext[1:]} exporter did not finish ({', '.join(result)})")


class FLOWVQ_OT_export_take(bpy.types.Operator):
    """Export the active (or baked) take of the target: .glb, .fbx or Live Link Face .csv"""
    bl_idname = "flowvq.export_take"
    bl_label = "Export Take"
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.glb;*.fbx;*.csv", options={"HIDDEN"})
    index: IntProperty(name="Take", default=-1, description="Take to export (-1: the active one)")

    def invoke(self, context, event):
        obj = target_of(context)
        if not self.filepath and obj is not None and len(obj.flowvq.takes):
            name = obj.flowvq.takes[max(obj.flowvq.active_take, 0)].name
            self.filepath = bpy.path.clean_name(name) + ".glb"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        obj = target_of(context)
        path = bpy.path.abspath(self.filepath)
        ext = Path(path).suffix.lower()
        try:
            if ext not in EXPORT_FORMATS:
                raise UserError(f"cannot export to '{Path(path).name or path}': choose a file "
                                "ending in .glb, .fbx or .csv")
            index, item = _chosen_item(obj, self.index)
            if item.shape_action is None:
                raise UserError(f"take '{item.name}' has no Action to export")
            if ext == ".csv":
                take = takes.take_of(item)  # the model curves: ARKit names, not the rig's keys
                livelink.write_csv(take, path)
                n = take.n_frames
            else:
                before = obj.flowvq.active_take
                takes.activate(obj, index)
                try:
                    export_blender(context, obj, item, path, ext)
                finally:
                    if 0 <= before < len(obj.flowvq.takes) and before != index:
                        takes.activate(obj, before)
                n = item.frames
        except (UserError, takes.TakeError) as e:
            return tasks.fail(self, str(e))
        except protocol.ProtocolError as e:
            return tasks.fail(self, e.message)
        except OSError as e:
            return tasks.fail(self, f"cannot write {path}: {e.strerror or e}")
        extra = "; FlowVQ's 12 extra channels have no Live Link column and were left out" \
            if ext == ".csv" else ""
        return tasks.info(self, f"exported '{item.name}' ({n} frames) to {path}{extra}")


class FLOWVQ_OT_import_livelink(bpy.types.Operator):
    """Import a Live Link Face CSV capture as a new take on the target (its own Actions)"""
    bl_idname = "flowvq.import_livelink"
    bl_label = "Import Live Link Face CSV"
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})
    frame_start: IntProperty(name="First Frame", default=-1, description="Frame of the first row "
                             "(-1: the active take's first frame, else the scene's start)")
    fps: FloatProperty(name="Frame Rate", default=0.0, min=0.0, description="Rate of the capture "
                       "(0: read from the timecodes; captures under a second are taken as 60)")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        scene = context.scene
        s = scene.flowvq
        obj = target_of(context)
        path = bpy.path.abspath(self.filepath)
        try:
            if obj is None or not takes.shape_keys_of(obj):
                raise UserError("no target with shape keys to import onto")
            if not os.path.isfile(path):
                raise UserError(f"'{self.filepath}' does not exist")
            take = livelink.read_csv(path, fps=self.fps or None)
            take = results.resample(take, scene_fps(scene))  # one key per scene frame
            start = self.frame_start
            if start < 0:
                active = obj.flowvq.active_take
                start = obj.flowvq.takes[active].frame_start \
                    if 0 <= active < len(obj.flowvq.takes) else scene.frame_start
            index = takes.add_take(scene, obj, take, start, pose_target_of(s), calibration_of(s))
            takes.activate(obj, index)
        except (UserError, takes.TakeError) as e:
            return tasks.fail(self, str(e))
        except protocol.ProtocolError as e:
            return tasks.fail(self, e.message)
        item = obj.flowvq.takes[index]
        return tasks.info(self, f"imported '{item.name}' ({item.frames} frames) from "
                                f"{Path(path).name}. {obj.flowvq.last_mapping}")


classes = (FLOWVQ_OT_export_take, FLOWVQ_OT_import_livelink)
