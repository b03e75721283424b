"""Takes in the .blend: one new Action per take, audition, keep/delete, NLA, bake.

Everything here runs on the main thread and looks objects up by what it is handed now; no
bpy object is kept across calls. Actions are only ever created (or removed when the user
deletes their own take): the artist's Actions are never modified, and the Action that was
assigned before the first take can be restored.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import bpy
import numpy as np

from . import keys, posemap, results, retarget
from ._shared import channels
from .results import TakeError

ACTIVATING = False  # set while activate() writes active_take, so its update hook does not recurse
Take = results.Take


@dataclass(frozen=True)
class PoseTarget:
    mode: str = "OBJECT"   # OBJECT, BONE or NONE
    object_name: str = ""  # empty = the target mesh itself
    bone: str = ""
    translation_scale: float = 1.0


def shape_keys_of(obj) -> list[str]:
    if obj is None or obj.type != "MESH" or obj.data.shape_keys is None:
        return []
    return [kb.name for kb in obj.data.shape_keys.key_blocks][1:]  # [0] is the basis


def mapping_for(obj, names, mirror: bool = False) -> retarget.Mapping:
    return retarget.match(names, shape_keys_of(obj), mirror=mirror)


def pose_owner(obj, pose: PoseTarget):
    if pose.mode == "NONE":
        return None
    owner = bpy.data.objects.get(pose.object_name) if pose.object_name else obj
    if owner is None:
        raise TakeError(f"pose object '{pose.object_name}' does not exist")
    if pose.mode == "BONE":
        if owner.type != "ARMATURE" or owner.pose is None or pose.bone not in owner.pose.bones:
            raise TakeError(f"'{owner.name}' has no pose bone named '{pose.bone}' for the head "
                            "pose (pick an armature and its head bone, or choose Object)")
    return owner


def _pose_curves(owner, pose: PoseTarget, curves: np.ndarray) -> list[keys.Curve]:
    if pose.mode == "BONE":
        pb = owner.pose.bones[pose.bone]
        pc = posemap.for_bone(curves, pose.translation_scale)
        rot_prop, rot_mode = "rotation_euler", pb.rotation_mode
        path = lambda prop: keys.bone_path(pose.bone, prop)  # noqa: E731
    else:
        pc = posemap.for_object(curves, pose.translation_scale, tuple(owner.rotation_euler),
                                tuple(owner.location))
        rot_mode = owner.rotation_mode
        path = lambda prop: prop  # noqa: E731
    group = "FlowVQ pose"
    out = [keys.Curve(path("location"), i, pc.location[:, i], group) for i in range(3)]
    if rot_mode == "QUATERNION":
        q = posemap.euler_to_quaternion(pc.rotation_euler)
        out += [keys.Curve(path("rotation_quaternion"), i, q[:, i], group) for i in range(4)]
    else:  # Euler (the default); axis-angle rigs get Euler keys they can switch to
        out += [keys.Curve(path("rotation_euler"), i, pc.rotation_euler[:, i], group)
                for i in range(3)]
    return out


def _remember_original(obj, pose_owner) -> None:
    settings = obj.flowvq
    if settings.original_saved:
        return
    key_ad = obj.data.shape_keys.animation_data
    settings.original_shape_action = key_ad.action if key_ad else None
    pose_ad = pose_owner.animation_data if pose_owner is not None else None
    settings.original_pose_action = pose_ad.action if pose_ad else None
    settings.original_saved = True


def _store_raw(action, take: Take, provenance: str) -> None:
    # the model-space curves ride along in the Action, so plates, export and re-targeting need
    # no backend; so does the take's whole provenance (settings, what guidance really did, ...)
    action["flowvq_expression"] = np.ascontiguousarray(take.expression, np.float32).ravel()
    action["flowvq_expression_shape"] = list(take.expression.shape)
    if take.pose is not None:
        action["flowvq_pose"] = np.ascontiguousarray(take.pose, np.float32).ravel()
    action["flowvq_names"] = ",".join(take.names)
    action["flowvq_fps"] = float(take.fps)
    action["flowvq_provenance"] = provenance
    action["flowvq_source"] = take.source


def raw_curves(action) -> tuple[np.ndarray, np.ndarray | None]:
    """The model-space (expression (T, C), pose (T, 6) or None) stored in a take's Action."""
    if action is None or "flowvq_expression" not in action:
        raise TakeError("this take carries no model curves (made by an older add-on?)")
    t, c = (int(v) for v in action["flowvq_expression_shape"])
    exp = np.asarray(action["flowvq_expression"], np.float32).reshape(t, c)
    pose = None
    if "flowvq_pose" in action:
        pose = np.asarray(action["flowvq_pose"], np.float32).reshape(t, -1)
    return exp, pose


def take_of(item) -> Take:
    """The take behind a take-list item: its stored model curves and provenance."""
    exp, pose = raw_curves(item.shape_action)
    names = tuple(item.shape_action["flowvq_names"].split(",")) \
        if "flowvq_names" in item.shape_action else channels.EXPRESSION_NAMES
    prov = results.provenance_of(item.provenance)
    prov.setdefault("settings", {})
    prov["settings"] = {**prov["settings"], "fps": float(item.fps)}
    return results.take_from(exp, pose, prov, names)


def add_take(scene, obj, take: Take, frame_start: int, pose: PoseTarget = PoseTarget(),
             calibration: retarget.Calibration = retarget.Calibration(),
             mapping: retarget.Mapping | None = None, label: str = "",
             provenance: str | None = None) -> int:
    """Write one take as new Actions on `obj` (and its pose owner); returns its list index."""
    if obj is None or obj.type != "MESH":
        raise TakeError("the target must be a mesh object")
    if obj.data.shape_keys is None:
        raise TakeError(f"'{obj.name}' has no shape keys: add the FlowVQ head, or pick a mesh "
                        "with ARKit-named shape keys")
    mapping = mapping or mapping_for(obj, take.names, calibration.mirror)
    if not mapping.drives:
        raise TakeError(f"none of '{obj.name}''s shape keys has an ARKit / FlowVQ channel name")
    owner = pose_owner(obj, pose)
    _remember_original(obj, owner)
    name = results.take_name(take, label)
    provenance = provenance or results.provenance_json(take)
    values = retarget.key_values(mapping, take.expression, calibration)
    shape_action, _ = keys.new_action(name, "KEY")
    keys.write_curves(shape_action, frame_start,
                      [keys.Curve(keys.shape_key_path(k), 0, v) for k, v in values.items()])
    _store_raw(shape_action, take, provenance)
    shape_action.use_fake_user = True  # a take survives saving even while not assigned
    pose_action = None
    if owner is not None and take.pose is not None:
        pose_action, _ = keys.new_action(f"{name} pose", "OBJECT")
        keys.write_curves(pose_action, frame_start, _pose_curves(owner, pose, take.pose))
        pose_action["flowvq_provenance"] = provenance
        pose_action["flowvq_source"] = take.source
        pose_action.use_fake_user = True
    item = obj.flowvq.takes.add()
    item.name = shape_action.name  # Blender's unique name, e.g. "... t2.001" on a re-run
    item.shape_action = shape_action
    item.pose_action = pose_action
    item.pose_object = owner if pose_action is not None else None
    _describe(item, take, provenance)
    item.frame_start, item.frames = frame_start, int(take.expression.shape[0])
    obj.flowvq.last_mapping = mapping.summary()
    end = frame_start + take.expression.shape[0] - 1
    if end > scene.frame_end:  # extend the scene to the audio, never shorten it
        scene.frame_end = end
    return len(obj.flowvq.takes) - 1


def _describe(item, take: Take, provenance: str) -> None:
    st = take.settings
    item.emotion, item.intensity, item.seed = st.emotion, st.intensity, min(st.seed, 2**31 - 1)
    item.take_index, item.temperature, item.fps = take.index, st.temperature, take.fps
    item.audio_sha256, item.source, item.provenance = take.audio_sha256, take.source, provenance


def activate(obj, index: int) -> None:
    """Audition take `index`: assign its Actions to the shape keys and the pose owner."""
    global ACTIVATING
    takes = obj.flowvq.takes
    if not 0 <= index < len(takes):
        raise TakeError(f"there is no take {index + 1} on '{obj.name}'")
    item = takes[index]
    keys.assign(obj.data.shape_keys, item.shape_action)
    if item.pose_object is not None and item.pose_action is not None:
        keys.assign(item.pose_object, item.pose_action)
    ACTIVATING = True
    try:
        obj.flowvq.active_take = index
    finally:
        ACTIVATING = False


def delete(obj, index: int) -> None:
    """Remove take `index` and its Actions (only ever the add-on's own)."""
    takes = obj.flowvq.takes
    if not 0 <= index < len(takes):
        raise TakeError(f"there is no take {index + 1} on '{obj.name}'")
    item = takes[index]
    for action in (item.shape_action, item.pose_action):
        if action is not None and action.name.startswith("FlowVQ"):
            bpy.data.actions.remove(action)
    takes.remove(index)
    global ACTIVATING
    ACTIVATING = True
    try:
        obj.flowvq.active_take = min(obj.flowvq.active_take, len(takes) - 1)
    finally:
        ACTIVATING = False


def restore_original(obj) -> None:
    """Give the shape keys (and pose owner) back the Actions they had before the first take."""
    settings = obj.flowvq
    if not settings.original_saved:
        return
    keys.assign(obj.data.shape_keys, settings.original_shape_action)
    owners = {t.pose_object for t in settings.takes if t.pose_object is not None}
    for owner in owners:
        keys.assign(owner, settings.original_pose_action)


def chosen(obj) -> list[int]:
    """Indices of the kept takes, or every take when none is kept."""
    takes = obj.flowvq.takes
    kept = [i for i, t in enumerate(takes) if t.kept]
    return kept or list(range(len(takes)))


def push_to_nla(obj, indices: list[int]) -> int:
    """One NLA track per take, blended by weight (Combine); the active Action is unassigned."""
    takes = obj.flowvq.takes
    if not indices:
        raise TakeError("no takes to push")
    total = sum(takes[i].weight for i in indices) or 1.0
    for i in indices:
        item = takes[i]
        pairs = [(obj.data.shape_keys, item.shape_action)]
        if item.pose_object is not None and item.pose_action is not None:
            pairs.append((item.pose_object, item.pose_action))
        for id_data, action in pairs:
            ad = id_data.animation_data or id_data.animation_data_create()
            track = ad.nla_tracks.new()
            track.name = action.name
            strip = track.strips.new(action.name, item.frame_start, action)
            strip.blend_type = "COMBINE"
            strip.use_animated_influence = True
            strip.influence = item.weight / total
            # the animated influence keeps one key; set it to the weight share
            for fc in strip.fcurves:
                for kp in fc.keyframe_points:
                    kp.co[1] = strip.influence
    keys.assign(obj.data.shape_keys, None)
    for i in indices:
        if takes[i].pose_object is not None:
            keys.assign(takes[i].pose_object, None)
    return len(indices)


def _blend(actions_weights, frame_lo: int, frame_hi: int) -> dict:
    """Weighted mean of several Actions' curves, sampled at every frame in [lo, hi]."""
    grid = np.arange(frame_lo, frame_hi + 1, dtype=np.float64)
    sums: dict = {}
    total = sum(w for _, w in actions_weights) or 1.0
    for action, w in actions_weights:
        for path, (f, v) in keys.read_curves(action).items():
            acc = sums.setdefault(path, np.zeros(len(grid)))
            acc += (w / total) * np.interp(grid, f, v)  # holds the ends outside a take
    return sums


def bake(obj, indices: list[int], name: str | None = None) -> int:
    """One new Action (shape keys, + one for pose) holding the weighted mean of the takes."""
    takes = obj.flowvq.takes
    if not indices:
        raise TakeError("no takes to bake")
    items = [takes[i] for i in indices]
    lo = min(t.frame_start for t in items)
    hi = max(t.frame_start + t.frames - 1 for t in items)
    first = items[0]
    label = name or f"FlowVQ bake {first.emotion} {len(items)} takes"
    shape = _blend([(t.shape_action, t.weight) for t in items], lo, hi)
    shape_action, _ = keys.new_action(label, "KEY")
    keys.write_curves(shape_action, lo, [keys.Curve(p, i, v) for (p, i), v in shape.items()])
    shape_action.use_fake_user = True
    same = all(t.frame_start == first.frame_start and t.frames == first.frames for t in items)
    w = np.array([t.weight for t in items], np.float64)
    w = w / (w.sum() or 1.0)
    baked_from = [{"name": t.name, "weight": float(wi)} for t, wi in zip(items, w)]
    base = take_of(first) if "flowvq_expression" in first.shape_action else None
    if same and base is not None:  # model curves too, so the bake can make plates and CSVs
        srcs = [take_of(t) for t in items]
        exp = sum(wi * r.expression.astype(np.float64) for wi, r in zip(w, srcs))
        pose = sum(wi * r.pose.astype(np.float64) for wi, r in zip(w, srcs))
        take = Take(expression=exp, pose=pose, settings=base.settings, index=0,
                    audio_sha256=base.audio_sha256, source="bake", names=base.names)
        provenance = results.provenance_json(take, baked_from=baked_from)
        _store_raw(shape_action, take, provenance)
    else:
        provenance = json.dumps({"source": "bake", "baked_from": baked_from}, sort_keys=True)
        shape_action["flowvq_provenance"] = provenance
        shape_action["flowvq_source"] = "bake"
    pose_items = [t for t in items if t.pose_action is not None and t.pose_object is not None]
    pose_action = None
    if pose_items:
        pose = _blend([(t.pose_action, t.weight) for t in pose_items], lo, hi)
        pose_action, _ = keys.new_action(f"{label} pose", "OBJECT")
        keys.write_curves(pose_action, lo, [keys.Curve(p, i, v, "FlowVQ pose")
                                            for (p, i), v in pose.items()])
        pose_action.use_fake_user = True
    # read everything from the old items first: adding to the collection may move them
    pose_object = pose_items[0].pose_object if pose_items else None
    described = (first.emotion, first.intensity, first.seed, first.fps)
    item = takes.add()
    item.name = shape_action.name
    item.shape_action, item.pose_action = shape_action, pose_action
    item.pose_object = pose_object
    item.emotion, item.intensity, item.seed, item.fps = described
    item.frame_start, item.frames = lo, hi - lo + 1
    item.source, item.provenance = "bake", provenance
    item.baked, item.kept = True, True
    index = len(takes) - 1
    activate(obj, index)
    return index
