"""Emotion keys on the timeline: add/remove, and the timeline markers that show them.

The keys live on the scene settings (`scene.flowvq.emotion_keys`: frame, emotion, intensity);
Generate turns them into the contract's `emotion_keys` (results.emotion_keys_from_frames). The
markers are a view of the keys, rewritten from them whenever a key changes: the add-on only ever
touches markers named "FlowVQ ...".
"""
from __future__ import annotations

import bpy
from bpy.props import IntProperty

from . import results, tasks


def sorted_keys(scene) -> list:
    return sorted(scene.flowvq.emotion_keys, key=lambda k: k.frame)


def sync_markers(scene) -> None:
    """The scene's FlowVQ markers = its emotion keys (none when markers are turned off)."""
    markers = scene.timeline_markers
    for m in [m for m in markers if m.name.startswith(results.MARKER_PREFIX)]:
        markers.remove(m)
    if scene.flowvq.emotion_markers:
        for k in sorted_keys(scene):
            markers.new(results.marker_name(k.emotion, k.intensity), frame=k.frame)


class FLOWVQ_OT_emotion_key_add(bpy.types.Operator):
    """Key the panel's Emotion and Intensity at the current frame (replaces a key already there)"""
    bl_idname = "flowvq.emotion_key_add"
    bl_label = "Add Emotion Key at Current Frame"
    bl_options = {"REGISTER", "UNDO"}

    frame: IntProperty(name="Frame", default=-(2**31), options={"SKIP_SAVE"},
                       description="Frame of the key (default: the current frame)")

    def execute(self, context):
        scene = context.scene
        s = scene.flowvq
        frame = scene.frame_current if self.frame == -(2**31) else self.frame
        keys = s.emotion_keys
        index = next((i for i, k in enumerate(keys) if k.frame == frame), None)
        if index is None:
            keys.add()
            index = len(keys) - 1
        key = keys[index]
        key.frame, key.emotion, key.intensity = frame, s.emotion, s.intensity
        s.emotion_key_index = index
        s.emotion_source = "KEYS"  # keying an emotion means generating with the keys
        sync_markers(scene)
        return tasks.info(self, f"emotion key '{key.emotion}' at frame {frame} "
                                f"({len(keys)} key(s))")


class FLOWVQ_OT_emotion_key_remove(bpy.types.Operator):
    """Remove the active emotion key (and its timeline marker)"""
    bl_idname = "flowvq.emotion_key_remove"
    bl_label = "Remove Emotion Key"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="Index", default=-1, options={"SKIP_SAVE"},
                       description="Key to remove (default: the active one)")

    def execute(self, context):
        scene = context.scene
        s = scene.flowvq
        index = s.emotion_key_index if self.index < 0 else self.index
        if not 0 <= index < len(s.emotion_keys):
            return tasks.fail(self, "no emotion key to remove")
        s.emotion_keys.remove(index)
        s.emotion_key_index = min(index, len(s.emotion_keys) - 1)
        sync_markers(scene)
        return {"FINISHED"}


classes = (FLOWVQ_OT_emotion_key_add, FLOWVQ_OT_emotion_key_remove)
