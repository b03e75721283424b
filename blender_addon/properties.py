"""The add-on's data in the .blend: scene settings, per-object takes, runtime status."""
from __future__ import annotations

import json

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty,
                       IntProperty, PointerProperty, StringProperty)

from . import actors
from .results import property_spec

_KINDS = {"EnumProperty": EnumProperty, "IntProperty": IntProperty,
          "FloatProperty": FloatProperty, "BoolProperty": BoolProperty}


def _contract(name: str, **extra):
    """The bpy property of GenerateSettings field `name`: default, range, label and help come
    from the shared contract's field metadata, never re-declared here."""
    spec = {**property_spec(name), **extra}
    kind = ("EnumProperty" if "items" in spec else
            "BoolProperty" if isinstance(spec["default"], bool) else
            "IntProperty" if isinstance(spec["default"], int) else "FloatProperty")
    return _KINDS[kind](**spec)


def _active_take_changed(self, context):
    from . import takes  # late: takes imports this module

    obj = self.id_data
    if 0 <= self.active_take < len(self.takes) and not takes.ACTIVATING:
        takes.activate(obj, self.active_take)


def _emotion_keys_changed(self, context):
    from . import ops_emotion  # late: the operators module imports this one

    ops_emotion.sync_markers(self.id_data)


_ACTOR_ITEMS: list = []  # Blender needs the enum's strings kept alive by Python


def offered_actors(context=None) -> list[dict]:
    """The actors the connected backend offers (its last hello), from the runtime status."""
    try:  # no window manager while a file loads or the add-on unregisters: none offered
        return json.loads((context or bpy.context).window_manager.flowvq_status.actors or "[]")
    except (AttributeError, ValueError):
        return []


def _actor_items(self, context):
    _ACTOR_ITEMS[:] = actors.enum_items(offered_actors(context), self.actor)
    return _ACTOR_ITEMS


def _actor_get(self) -> int:
    chosen = self.actor or actors.DEFAULT
    for item in actors.enum_items(offered_actors(), self.actor):
        if item[0] == chosen:
            return item[4]
    return 0


def _actor_set(self, value: int) -> None:
    for item in actors.enum_items(offered_actors(), self.actor):
        if item[4] == value:
            self.actor = "" if item[0] == actors.DEFAULT else item[0]
            return


class FlowVQEmotionKey(bpy.types.PropertyGroup):
    """An emotion key on the timeline: from this frame on, this emotion (blended over 0.6 s)."""
    frame: IntProperty(name="Frame", description="Scene frame of the key; seconds are counted "
                       "from the audio's first frame", update=_emotion_keys_changed)
    emotion: _contract("emotion", update=_emotion_keys_changed)
    intensity: _contract("intensity", update=_emotion_keys_changed)


class FlowVQTake(bpy.types.PropertyGroup):
    # name (inherited) is the label shown in the take list, e.g. "FlowVQ happy s7 t2"
    shape_action: PointerProperty(type=bpy.types.Action, name="Shape-key Action")
    pose_action: PointerProperty(type=bpy.types.Action, name="Pose Action")
    pose_object: PointerProperty(type=bpy.types.Object, name="Pose Object")
    emotion: StringProperty(name="Emotion")
    intensity: FloatProperty(name="Intensity")
    seed: IntProperty(name="Seed")
    take_index: IntProperty(name="Take")
    temperature: FloatProperty(name="Temperature")
    fps: FloatProperty(name="FPS")
    frame_start: IntProperty(name="First Frame")
    frames: IntProperty(name="Frames")
    audio_sha256: StringProperty(name="Audio SHA-256")
    source: StringProperty(name="Source", description="flowvq (generated), livelink:<file> "
                           "(imported), or bake")
    provenance: StringProperty(name="Provenance", description="Everything that made this take "
                               "(JSON: settings, guidance applied and why, blinks, audio hash, "
                               "source)")
    kept: BoolProperty(name="Keep", description="Keep this take (push to NLA / bake use kept "
                       "takes)", default=False)
    weight: FloatProperty(name="Weight", description="Share of this take when blending in the "
                          "NLA or baking", default=1.0, min=0.0, soft_max=1.0)
    baked: BoolProperty(name="Baked", default=False)


class FlowVQObjectSettings(bpy.types.PropertyGroup):
    takes: CollectionProperty(type=FlowVQTake)
    active_take: IntProperty(name="Active Take", default=-1, update=_active_take_changed)
    # what the artist had assigned before the first take, restored by "Restore Original"
    original_saved: BoolProperty(default=False)
    original_shape_action: PointerProperty(type=bpy.types.Action)
    original_pose_action: PointerProperty(type=bpy.types.Action)
    last_mapping: StringProperty(name="Last Mapping", description="How the last take's "
                                 "channels were matched to this object's shape keys")


class FlowVQCalibrationRow(bpy.types.PropertyGroup):
    # name (inherited) is the FlowVQ channel
    gain: FloatProperty(name="Gain", default=1.0, soft_min=0.0, soft_max=2.0)
    offset: FloatProperty(name="Offset", default=0.0, soft_min=-1.0, soft_max=1.0)


class FlowVQSceneSettings(bpy.types.PropertyGroup):
    audio_source: EnumProperty(name="Audio", items=[
        ("STRIP", "Sound Strip", "The active sound strip of the Video Sequencer; its start "
                                 "sets the first frame"),
        ("FILE", "File", "An audio file; keys start at the scene's start frame")],
        default="STRIP")
    audio_file: StringProperty(name="Audio File", subtype="FILE_PATH")
    emotion_source: EnumProperty(name="Emotion From", items=[
        ("LABEL", "Label", "One of the 9 emotion classes"),
        ("IMAGE", "Reference Image", "Transfer the emotion of a face in an image"),
        ("KEYS", "Keys", "Emotion keys on the timeline: the emotion changes during the take")],
        default="LABEL")
    reference_image: StringProperty(name="Reference Image", subtype="FILE_PATH")
    emotion_keys: CollectionProperty(type=FlowVQEmotionKey, name="Emotion Keys")
    emotion_key_index: IntProperty(name="Active Emotion Key", default=0)
    emotion_markers: BoolProperty(name="Timeline Markers", default=True,
                                  description="Show the emotion keys as timeline markers "
                                              "(\"FlowVQ sad\"), rewritten when a key changes",
                                  update=_emotion_keys_changed)
    # the generate settings: declared once, in flowvq_shared.settings.GenerateSettings
    emotion: _contract("emotion")
    intensity: _contract("intensity")
    takes: _contract("takes")
    seed: _contract("seed")
    temperature: _contract("temperature")
    blinks: _contract("blinks")
    phone_guidance: _contract("phone_guidance", subtype="FACTOR")
    # the chosen actor id ("" = the default model): saved in the .blend, sent as the contract's
    # `actor`; the selector below shows it among the ids the connected backend offers
    actor: StringProperty(**property_spec("actor"))
    actor_choice: EnumProperty(name="Actor", items=_actor_items, get=_actor_get, set=_actor_set,
                               description="Generate with an actor profile the backend offers "
                                           "(flowvq serve --actors DIR), or the default model")
    learn_name: StringProperty(name="Actor Name", description="The new actor's id (letters, "
                               "digits, '.', '_', '-'): the profile folder's name")
    learn_mouth_bank: BoolProperty(name="Mouth Bank (for dubbing)", default=True,
                                   description="Keep their lower face in every frame (~12 kB a frame): what "
                                               "Dub takes the mouth from. Off: a profile of a few MB to share")
    learn_video: StringProperty(name="Video", subtype="FILE_PATH",
                                description="Footage of one person speaking with their own voice "
                                            "(used when no movie strip is active)")
    target: PointerProperty(type=bpy.types.Object, name="Target",
                            poll=lambda self, obj: obj.type == "MESH",
                            description="Mesh whose shape keys receive the expression curves")
    pose_mode: EnumProperty(name="Head Pose", items=[
        ("OBJECT", "Object", "Rotate and move an object (by default the target)"),
        ("BONE", "Bone", "Rotate and move a pose bone of an armature"),
        ("NONE", "None", "Expression only")], default="OBJECT")
    pose_object: PointerProperty(type=bpy.types.Object, name="Pose Object",
                                 description="Object (or armature, for a bone) to move; "
                                             "empty = the target")
    pose_bone: StringProperty(name="Bone")
    # pose translation is in face-model units (centimetres); Blender scenes are in metres
    translation_scale: FloatProperty(name="Translation Scale", default=0.01, min=0.0,
                                     description="Model units (cm) -> Blender units for head "
                                                 "translation")
    mirror: BoolProperty(name="Mirror Sides", default=False,
                         description="Swap left and right (rigs named from the viewer's side)")
    clamp: BoolProperty(name="Clamp 0-1", default=False,
                        description="Clamp calibrated values to the usual slider range")
    calibration: CollectionProperty(type=FlowVQCalibrationRow)
    calibration_index: IntProperty(default=0)
    portrait: StringProperty(name="Portrait", subtype="FILE_PATH")
    plate_dir: StringProperty(name="Output Folder", subtype="DIR_PATH", default="//plates/")
    plate_format: EnumProperty(name="Format", items=[
        ("png", "PNG 8-bit", ""), ("png16", "PNG 16-bit", ""), ("exr", "OpenEXR", "")],
        default="png")
    dub_line: EnumProperty(name="New Line", items=[
        ("SOUND", "Sound Strip", "The selected sound strip's file, whole, from the movie strip's first frame"),
        ("TAKE", "Active Take", "The target's active take, from the movie strip's first frame")],
        default="SOUND", description="What the dubbed mouth follows")
    dub_format: EnumProperty(name="Format", items=[
        ("png", "PNG 8-bit", ""), ("png16", "PNG 16-bit", ""), ("exr", "OpenEXR", "")],
        default="png", description="The dubbed frames' files")
    dub_dir: StringProperty(name="Dubs Folder", subtype="DIR_PATH", default="",
                            description="Where each dub gets a new numbered folder (empty: flowvq_dubs "
                                        "beside the .blend, or in the temporary folder while it is unsaved)")


class FlowVQStatus(bpy.types.PropertyGroup):
    """Runtime only (lives on the window manager, never saved)."""
    connected: BoolProperty(default=False)
    text: StringProperty(default="Backend not checked yet")
    server: StringProperty()
    device: StringProperty()
    models: StringProperty()
    unavailable: StringProperty(description="Requests the backend cannot serve yet, and why")
    endpoint: StringProperty()
    busy: BoolProperty(default=False)
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    stage: StringProperty()
    last_error: StringProperty()
    last_report: StringProperty()
    actors: StringProperty(description="JSON list of the actor profiles the backend offers")


classes = (FlowVQEmotionKey, FlowVQTake, FlowVQObjectSettings, FlowVQCalibrationRow, FlowVQSceneSettings,
           FlowVQStatus)


def attach() -> None:
    bpy.types.Object.flowvq = PointerProperty(type=FlowVQObjectSettings)
    bpy.types.Scene.flowvq = PointerProperty(type=FlowVQSceneSettings)
    bpy.types.WindowManager.flowvq_status = PointerProperty(type=FlowVQStatus)


def detach() -> None:
    del bpy.types.WindowManager.flowvq_status
    del bpy.types.Scene.flowvq
    del bpy.types.Object.flowvq
