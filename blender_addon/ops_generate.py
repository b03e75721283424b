"""Generate takes from the scene's audio (and add the backend's head)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import bpy
from bpy.props import FloatProperty

from . import results, retarget, takes, tasks
from ._shared import channels, protocol
from .connection import UserError


def calibration_of(settings) -> retarget.Calibration:
    return retarget.Calibration(
        gains={r.name: r.gain for r in settings.calibration if r.gain != 1.0},
        offsets={r.name: r.offset for r in settings.calibration if r.offset != 0.0},
        mirror=settings.mirror, clamp=(0.0, 1.0) if settings.clamp else None)


def target_of(context):
    t = context.scene.flowvq.target
    if t is None and context.active_object is not None and context.active_object.type == "MESH":
        t = context.active_object
    return t


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def pose_target_of(s) -> takes.PoseTarget:
    pose_object = s.pose_object.name if s.pose_object is not None else ""
    return takes.PoseTarget(s.pose_mode, pose_object, s.pose_bone, s.translation_scale)


def settings_of(scene) -> results.GenerateSettings:
    """The panel's generate settings as the shared contract (ProtocolError if out of range)."""
    s = scene.flowvq
    return results.settings_from({k: getattr(s, k) for k in results.PANEL_FIELDS},
                                 scene_fps(scene))


def keyed_settings(scene, settings, frame_start: int) -> tuple[results.GenerateSettings, str]:
    """`settings` with the timeline's emotion keys, seconds from the audio's first frame at the
    scene rate (keys before it clamped: results.emotion_keys_from_frames), and the clamp note."""
    keys = [(k.frame, k.emotion, k.intensity) for k in scene.flowvq.emotion_keys]
    keyed, note = results.emotion_keys_from_frames(keys, frame_start, scene_fps(scene))
    return results.with_emotion_keys(settings, keyed), note


@dataclass(frozen=True)
class GenerateSpec:
    """Everything needed to apply a generate result, by name (no bpy objects kept)."""
    scene: str
    target: str
    frame_start: int
    pose: takes.PoseTarget
    calibration: retarget.Calibration
    label: str = ""  # names the takes for where the emotion came from ("reference")
    note: str = ""  # said with the result (e.g. emotion keys clamped to the audio's start)

    def apply(self, result: dict) -> str:
        scene = bpy.data.scenes[self.scene]
        obj = bpy.data.objects.get(self.target)
        if obj is None:
            raise UserError(f"target '{self.target}' was deleted while generating")
        new = results.takes_from_result(result)
        mapping = takes.mapping_for(obj, new[0].names, self.calibration.mirror)
        first = None
        for take in new:
            index = takes.add_take(scene, obj, take, self.frame_start, self.pose,
                                   self.calibration, mapping, label=self.label)
            first = index if first is None else first
        takes.activate(obj, first)
        names = ", ".join(obj.flowvq.takes[i].name for i in range(first, first + len(new)))
        notes = sorted({t.guidance_note for t in new if t.guidance_note})
        note = f" Phone guidance: {'; '.join(notes)}." if notes else ""
        note += f" Note: {self.note}." if self.note else ""
        return f"{len(new)} take(s) on '{obj.name}': {names}. {mapping.summary()}{note}"


def audio_source(scene) -> tuple[bytes, int, str]:
    """(audio file bytes, first frame, label) from the active sound strip or the file setting."""
    s = scene.flowvq
    if s.audio_source == "FILE":
        path = bpy.path.abspath(s.audio_file)
        if not s.audio_file or not os.path.isfile(path):
            raise UserError(f"audio file '{s.audio_file}' does not exist")
        return Path(path).read_bytes(), scene.frame_start, os.path.basename(path)
    se = scene.sequence_editor
    strips = [st for st in (se.strips_all if se else ()) if st.type == "SOUND"]
    strip = se.active_strip if se is not None else None
    if strip is None or strip.type != "SOUND":
        if len(strips) != 1:
            raise UserError("no active sound strip: select one in the Video Sequencer "
                            "(or set Audio to File)" if not strips else
                            "several sound strips and none is active: click the one to use")
        strip = strips[0]
    sound = strip.sound
    if sound.packed_file is not None:
        data = bytes(sound.packed_file.data)
    else:
        path = bpy.path.abspath(sound.filepath)
        if not os.path.isfile(path):
            raise UserError(f"sound strip '{strip.name}' points to a missing file {path}")
        data = Path(path).read_bytes()
    return data, int(strip.frame_start), strip.name


class FLOWVQ_OT_generate(tasks.JobOperator, bpy.types.Operator):
    """Generate takes from the audio: one new Action per take on the target's shape keys"""
    bl_idname = "flowvq.generate"
    bl_label = "Generate Takes"

    def execute(self, context):
        scene = context.scene
        s = scene.flowvq
        obj = target_of(context)
        try:
            if obj is None:
                raise UserError("no target: pick a mesh with ARKit-named shape keys, or add "
                                "the FlowVQ head")
            if not takes.shape_keys_of(obj):
                raise UserError(f"'{obj.name}' has no shape keys: add the FlowVQ head, or pick "
                                "a mesh with ARKit-named shape keys")
            mapping = takes.mapping_for(obj, channels.EXPRESSION_NAMES, s.mirror)
            if not mapping.drives:
                raise UserError(f"none of '{obj.name}''s shape keys has an ARKit name")
            settings = settings_of(scene)
            audio, frame_start, _label = audio_source(scene)
            note = ""
            if s.emotion_source == "KEYS":
                settings, note = keyed_settings(scene, settings, frame_start)
            image = None
            if s.emotion_source == "IMAGE":
                path = bpy.path.abspath(s.reference_image)
                if not os.path.isfile(path):
                    raise UserError(f"reference image '{s.reference_image}' does not exist")
                image = Path(path).read_bytes()
                settings = settings.replace(emotion="talking")
            pose = pose_target_of(s)
            takes.pose_owner(obj, pose)  # fail now, not after minutes of generating
        except (UserError, takes.TakeError) as e:
            return tasks.fail(self, str(e))
        except protocol.ProtocolError as e:
            return tasks.fail(self, e.message)
        obj.flowvq.last_mapping = mapping.summary()
        request = results.generate_request(settings, audio, image)
        spec = GenerateSpec(scene.name, obj.name, frame_start, pose, calibration_of(s),
                            label="reference" if image is not None else "", note=note)
        return tasks.start(self, context, request, spec, self.blocking, self.timeout)


@dataclass(frozen=True)
class FaceModelSpec:
    scene: str
    name: str
    scale: float = 1.0

    def apply(self, result: dict) -> str:
        from . import head

        scene = bpy.data.scenes[self.scene]
        obj = head.build_head(self.name, result["neutral"], result["deltas"], result["names"],
                              result["faces"], result.get("uv"), result.get("has_channel"),
                              self.scale, scene.collection)
        scene.flowvq.target = obj
        missing = [n for n, ok in zip(result["names"], result.get("has_channel", [])) if not ok]
        note = f"; channels the model has no shape for yet: {', '.join(missing)}" if missing \
            else ""
        return f"added '{obj.name}' with {len(result['names'])} shape keys{note}"


class FLOWVQ_OT_add_head(tasks.JobOperator, bpy.types.Operator):
    """Add the backend's default head: a mesh with the 64 FlowVQ/ARKit shape keys"""
    bl_idname = "flowvq.add_head"
    bl_label = "Add FlowVQ Head"
    # the face model is in centimetres; Blender scenes are in metres
    scale: FloatProperty(name="Scale", default=0.01, min=1e-5,
                         description="Model units to Blender units (0.01: centimetres to metres)")

    def execute(self, context):
        spec = FaceModelSpec(context.scene.name, "FlowVQ Head", self.scale)
        return tasks.start(self, context, {"type": "face_model", "model": "default"}, spec,
                           self.blocking, self.timeout)


classes = (FLOWVQ_OT_generate, FLOWVQ_OT_add_head)
