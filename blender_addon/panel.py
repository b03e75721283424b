"""The FlowVQ tab of the 3D viewport's sidebar: backend, audio, emotion, takes, target, plates."""
from __future__ import annotations

import bpy


class FLOWVQ_UL_takes(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.prop(item, "kept", text="", icon="CHECKBOX_HLT" if item.kept else "CHECKBOX_DEHLT",
                 emboss=False)
        row.label(text=item.name, icon="ACTION" if not item.baked else "NLA")
        row.prop(item, "weight", text="", emboss=False)


class FLOWVQ_UL_emotion_keys(bpy.types.UIList):
    """The emotion keys, shown in frame order (the collection keeps the order they were added)."""
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.prop(item, "frame", text="", emboss=False)
        row.prop(item, "emotion", text="")
        row.prop(item, "intensity", text="")

    def filter_items(self, context, data, propname):
        keys = getattr(data, propname)
        by_frame = sorted(range(len(keys)), key=lambda i: keys[i].frame)
        order = [0] * len(keys)
        for position, i in enumerate(by_frame):
            order[i] = position
        return [], order


class FLOWVQ_UL_calibration(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.label(text=item.name)
        row.prop(item, "gain", text="gain")
        row.prop(item, "offset", text="offset")


class _FlowVQPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FlowVQ"


class FLOWVQ_PT_main(_FlowVQPanel, bpy.types.Panel):
    bl_label = "FlowVQ"

    def draw(self, context):
        st = context.window_manager.flowvq_status
        layout = self.layout
        box = layout.box()
        box.label(text=st.text, icon="LINKED" if st.connected else "UNLINKED")
        if st.connected:
            if st.models:
                box.label(text=f"Models: {st.models}")
            for line in filter(None, st.unavailable.split("; ")):
                box.label(text=f"Not available yet: {line}", icon="INFO")
        row = box.row(align=True)
        row.operator("flowvq.check_backend", icon="FILE_REFRESH")
        row.operator("flowvq.start_backend", icon="PLAY")
        row.operator("flowvq.stop_backend", text="", icon="X")
        if st.busy:
            row = layout.row(align=True)
            row.progress(factor=st.progress, text=f"{st.stage} {round(100 * st.progress)}%")
            row.operator("flowvq.cancel", text="", icon="CANCEL")
        if st.last_error:
            layout.label(text=st.last_error, icon="ERROR")


class FLOWVQ_PT_generate(_FlowVQPanel, bpy.types.Panel):
    bl_label = "Generate"
    bl_parent_id = "FLOWVQ_PT_main"

    def draw(self, context):
        s = context.scene.flowvq
        layout = self.layout
        layout.prop(s, "audio_source", expand=True)
        if s.audio_source == "FILE":
            layout.prop(s, "audio_file")
        fps = context.scene.render.fps / context.scene.render.fps_base
        layout.label(text=f"Scene frame rate: {fps:g} fps")
        row = layout.row(align=True)
        row.prop(s, "actor_choice")
        row.operator("flowvq.check_backend", text="", icon="FILE_REFRESH")
        layout.prop(s, "emotion_source", expand=True)
        if s.emotion_source == "LABEL":
            layout.prop(s, "emotion")
        elif s.emotion_source == "IMAGE":
            layout.prop(s, "reference_image")
        else:
            layout.template_list("FLOWVQ_UL_emotion_keys", "", s, "emotion_keys", s,
                                 "emotion_key_index", rows=3)
            row = layout.row(align=True)
            row.operator("flowvq.emotion_key_add", text="Add Key at Current Frame",
                         icon="KEYFRAME_HLT")
            row.operator("flowvq.emotion_key_remove", text="", icon="REMOVE")
            layout.prop(s, "emotion_markers")
            layout.label(text="New key:")
            layout.prop(s, "emotion")
        layout.prop(s, "intensity")
        row = layout.row(align=True)
        row.prop(s, "takes")
        row.prop(s, "seed")
        layout.prop(s, "temperature")
        layout.prop(s, "blinks")
        layout.prop(s, "phone_guidance", slider=True)
        layout.operator("flowvq.generate", icon="SOUND")


class FLOWVQ_PT_actors(_FlowVQPanel, bpy.types.Panel):
    """Learn an actor profile from footage; the Generate panel's Actor picks one."""
    bl_label = "Actors"
    bl_parent_id = "FLOWVQ_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        from .ops_actors import movie_strips

        s = context.scene.flowvq
        layout = self.layout
        layout.prop(s, "learn_name")
        strips = movie_strips(context.scene)
        if strips and not s.learn_video:
            names = ", ".join(f"'{st.name}'" for st in strips)
            layout.label(text=f"Footage: movie strip{'s' if len(strips) > 1 else ''} {names}", icon="SEQUENCE")
        layout.prop(s, "learn_video")
        layout.prop(s, "learn_mouth_bank")
        layout.operator("flowvq.learn_actor", icon="USER")
        layout.label(text="Takes minutes (about 11 per minute of footage on a CPU)", icon="INFO")


class FLOWVQ_PT_takes(_FlowVQPanel, bpy.types.Panel):
    bl_label = "Takes"
    bl_parent_id = "FLOWVQ_PT_main"

    def draw(self, context):
        layout = self.layout
        obj = context.scene.flowvq.target or context.active_object
        if obj is None or not hasattr(obj, "flowvq"):
            layout.label(text="Pick a target to see its takes")
            return
        layout.template_list("FLOWVQ_UL_takes", "", obj.flowvq, "takes", obj.flowvq,
                             "active_take", rows=4)
        row = layout.row(align=True)
        row.operator("flowvq.take_delete", icon="TRASH")
        row.operator("flowvq.take_restore", icon="LOOP_BACK")
        row = layout.row(align=True)
        row.operator("flowvq.take_push_nla", icon="NLA_PUSHDOWN")
        row.operator("flowvq.take_bake", icon="ACTION")
        row = layout.row(align=True)
        row.operator("flowvq.export_take", icon="EXPORT")
        row.operator("flowvq.import_livelink", text="Import Live Link", icon="IMPORT")
        if 0 <= obj.flowvq.active_take < len(obj.flowvq.takes):
            item = obj.flowvq.takes[obj.flowvq.active_take]
            if item.source and item.source != "flowvq":
                layout.label(text=f"Source: {item.source}", icon="INFO")
        layout.operator("screen.animation_play", text="Play", icon="PLAY")


class FLOWVQ_PT_target(_FlowVQPanel, bpy.types.Panel):
    bl_label = "Target"
    bl_parent_id = "FLOWVQ_PT_main"

    def draw(self, context):
        s = context.scene.flowvq
        layout = self.layout
        layout.prop(s, "target")
        layout.operator("flowvq.add_head", icon="MONKEY")
        layout.prop(s, "pose_mode")
        if s.pose_mode != "NONE":
            layout.prop(s, "pose_object")
            if s.pose_mode == "BONE":
                layout.prop(s, "pose_bone")
            layout.prop(s, "translation_scale")
        row = layout.row()
        row.prop(s, "mirror")
        row.prop(s, "clamp")
        layout.operator("flowvq.check_mapping", icon="VIEWZOOM")
        obj = s.target
        if obj is not None and obj.flowvq.last_mapping:
            col = layout.column(align=True)
            for part in obj.flowvq.last_mapping.split("; "):
                col.label(text=part)
        layout.label(text="Calibration (per channel)")
        layout.template_list("FLOWVQ_UL_calibration", "", s, "calibration", s,
                             "calibration_index", rows=4)
        row = layout.row(align=True)
        row.operator("flowvq.calibration_reset", text="Reset")
        row.operator("flowvq.calibration_load", text="Load", icon="FILEBROWSER")
        row.operator("flowvq.calibration_save", text="Save", icon="FILE_TICK")


class FLOWVQ_PT_plates(_FlowVQPanel, bpy.types.Panel):
    bl_label = "Plates"
    bl_parent_id = "FLOWVQ_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.flowvq
        layout = self.layout
        layout.prop(s, "portrait")
        layout.prop(s, "plate_dir")
        layout.prop(s, "plate_format")
        layout.operator("flowvq.render_plates", icon="RENDER_ANIMATION")


class FLOWVQ_PT_dub(bpy.types.Panel):
    """The Video Sequencer's sidebar: dub the movie strip to a new line."""
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "FlowVQ"
    bl_label = "Dub"

    def draw(self, context):
        s = context.scene.flowvq
        st = context.window_manager.flowvq_status
        layout = self.layout
        layout.label(text=st.text, icon="LINKED" if st.connected else "UNLINKED")
        se = context.scene.sequence_editor
        strip = se.active_strip if se is not None else None
        if strip is not None and strip.type == "MOVIE":
            fps = context.scene.render.fps / context.scene.render.fps_base
            layout.label(text=f"Shot: '{strip.name}' ({getattr(strip, 'fps', 0.0):g} fps, scene {fps:g} fps)",
                         icon="SEQUENCE")
        layout.prop(s, "dub_line", expand=True)
        if s.dub_line == "SOUND":
            layout.label(text="The selected sound strip's file, whole", icon="SOUND")
        layout.prop(s, "actor_choice")
        layout.prop(s, "dub_format")
        layout.prop(s, "dub_dir")
        layout.operator("flowvq.dub_movie_strip", icon="SEQUENCE")
        if st.busy:
            row = layout.row(align=True)
            row.progress(factor=st.progress, text=f"{st.stage} {round(100 * st.progress)}%")
            row.operator("flowvq.cancel", text="", icon="CANCEL")
        if st.last_error:
            layout.label(text=st.last_error, icon="ERROR")


classes = (FLOWVQ_UL_takes, FLOWVQ_UL_emotion_keys, FLOWVQ_UL_calibration, FLOWVQ_PT_main, FLOWVQ_PT_generate,
           FLOWVQ_PT_actors, FLOWVQ_PT_takes, FLOWVQ_PT_target, FLOWVQ_PT_plates, FLOWVQ_PT_dub)
