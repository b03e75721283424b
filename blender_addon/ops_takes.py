"""Take-list operators: audition, delete, push to NLA, bake, restore."""
from __future__ import annotations

import bpy
from bpy.props import IntProperty

from . import takes, tasks
from .ops_generate import target_of


class _TakeOperator:
    """Shared body of the take operators: find the target's takes, run one step, report errors."""

    def execute(self, context):
        obj = target_of(context)
        if obj is None or not len(obj.flowvq.takes):
            return tasks.fail(self, "the target has no takes")
        try:
            message = self.run(obj)
        except takes.TakeError as e:
            return tasks.fail(self, str(e))
        return tasks.info(self, message) if message else {"FINISHED"}

    def chosen_index(self, obj) -> int:
        return self.index if self.index >= 0 else obj.flowvq.active_take


class FLOWVQ_OT_take_activate(_TakeOperator, bpy.types.Operator):
    """Audition this take: make its Actions the active ones"""
    bl_idname = "flowvq.take_activate"
    bl_label = "Audition Take"
    index: IntProperty(default=-1)

    def run(self, obj):
        takes.activate(obj, self.chosen_index(obj))


class FLOWVQ_OT_take_delete(_TakeOperator, bpy.types.Operator):
    """Delete this take and its Actions"""
    bl_idname = "flowvq.take_delete"
    bl_label = "Delete Take"
    index: IntProperty(default=-1)

    def run(self, obj):
        takes.delete(obj, self.chosen_index(obj))


class FLOWVQ_OT_take_push_nla(_TakeOperator, bpy.types.Operator):
    """Push the kept takes (all, if none is kept) to NLA tracks, blended by their weights"""
    bl_idname = "flowvq.take_push_nla"
    bl_label = "Push to NLA"

    def run(self, obj):
        n = takes.push_to_nla(obj, takes.chosen(obj))
        return f"{n} take(s) pushed to NLA tracks"


class FLOWVQ_OT_take_bake(_TakeOperator, bpy.types.Operator):
    """Bake the kept takes (all, if none is kept) into one Action, for export"""
    bl_idname = "flowvq.take_bake"
    bl_label = "Bake to One Action"

    def run(self, obj):
        chosen = [i for i in takes.chosen(obj) if not obj.flowvq.takes[i].baked] \
            or takes.chosen(obj)
        index = takes.bake(obj, chosen)
        return f"baked {len(chosen)} take(s) into '{obj.flowvq.takes[index].name}'"


class FLOWVQ_OT_take_restore(_TakeOperator, bpy.types.Operator):
    """Assign back the Actions the target had before the first take"""
    bl_idname = "flowvq.take_restore"
    bl_label = "Restore Original"

    def run(self, obj):
        takes.restore_original(obj)


classes = (FLOWVQ_OT_take_activate, FLOWVQ_OT_take_delete, FLOWVQ_OT_take_push_nla,
           FLOWVQ_OT_take_bake, FLOWVQ_OT_take_restore)
