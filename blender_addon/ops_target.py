"""Target operators: check the shape-key mapping, calibration table and presets."""
from __future__ import annotations

import bpy
from bpy.props import StringProperty

from . import retarget, takes, tasks
from ._shared import channels
from .ops_generate import calibration_of, target_of


class FLOWVQ_OT_check_mapping(bpy.types.Operator):
    """List which channels reach which shape keys of the target, and which find none"""
    bl_idname = "flowvq.check_mapping"
    bl_label = "Check Mapping"

    def execute(self, context):
        obj = target_of(context)
        if obj is None:
            return tasks.fail(self, "no target mesh")
        mapping = takes.mapping_for(obj, channels.EXPRESSION_NAMES, context.scene.flowvq.mirror)
        obj.flowvq.last_mapping = mapping.summary()
        return tasks.info(self, mapping.summary())


class FLOWVQ_OT_calibration_reset(bpy.types.Operator):
    """Fill the calibration table with every channel at gain 1, offset 0"""
    bl_idname = "flowvq.calibration_reset"
    bl_label = "Reset Calibration"

    def execute(self, context):
        table = context.scene.flowvq.calibration
        table.clear()
        for name in channels.EXPRESSION_NAMES:
            row = table.add()
            row.name = name
        return {"FINISHED"}


class FLOWVQ_OT_calibration_save(bpy.types.Operator):
    """Save the calibration table as a JSON preset"""
    bl_idname = "flowvq.calibration_save"
    bl_label = "Save Calibration Preset"
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        self.filepath = self.filepath or "flowvq_calibration.json"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            calibration_of(context.scene.flowvq).save(bpy.path.abspath(self.filepath))
        except OSError as e:
            return tasks.fail(self, f"cannot write {self.filepath}: {e.strerror or e}")
        return {"FINISHED"}


class FLOWVQ_OT_calibration_load(bpy.types.Operator):
    """Load a JSON calibration preset into the table"""
    bl_idname = "flowvq.calibration_load"
    bl_label = "Load Calibration Preset"
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            cal = retarget.Calibration.load(bpy.path.abspath(self.filepath))
        except (OSError, ValueError) as e:
            return tasks.fail(self, str(e))
        s = context.scene.flowvq
        bpy.ops.flowvq.calibration_reset()
        for row in s.calibration:
            row.gain = cal.gains.get(row.name, 1.0)
            row.offset = cal.offsets.get(row.name, 0.0)
        s.mirror, s.clamp = cal.mirror, cal.clamp is not None
        return {"FINISHED"}


classes = (FLOWVQ_OT_check_mapping, FLOWVQ_OT_calibration_reset, FLOWVQ_OT_calibration_save,
           FLOWVQ_OT_calibration_load)
