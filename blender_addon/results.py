"""Generate requests and results, take names and provenance: bpy-free (tested without Blender).

The settings come from the shared contract (`GenerateSettings`), results are read with
`Take.from_wire`, and a take's whole provenance travels as one JSON string that the .blend
keeps on the take item and on its Actions.
"""
from __future__ import annotations

import json
import math

import numpy as np

from ._shared import channels, protocol, settings, takes

GenerateSettings = settings.GenerateSettings
Take = takes.Take
FIELDS = settings.FIELDS
MAX_TAKES = settings.MAX_TAKES
SOFT_MAX_TAKES = 16  # the slider's reach; typing allows up to MAX_TAKES
PANEL_FIELDS = ("emotion", "intensity", "takes", "seed", "temperature", "blinks",
                "phone_guidance", "actor")  # fps comes from the scene
INT_MAX = 2**31 - 1  # Blender's IntProperty is 32-bit


class TakeError(Exception):
    """A take operation the user asked for cannot be done (message is shown as a report)."""


def property_spec(name: str) -> dict:
    """Keyword arguments for the bpy property of GenerateSettings field `name` (no bpy here)."""
    f = FIELDS[name]
    md = f.metadata
    spec = {"name": md["label"] or name, "description": md["help"][:1].upper() + md["help"][1:],
            "default": f.default}
    if md["choices"]:
        spec["items"] = [(c, c.capitalize(), f"Generate with the '{c}' emotion")
                         for c in md["choices"]]
    elif md["lo"] is not None:
        spec["min"] = md["lo"]
        spec["max"] = min(md["hi"], INT_MAX) if isinstance(f.default, int) else md["hi"]
    if name == "takes":
        spec["soft_max"] = SOFT_MAX_TAKES  # the slider's reach; the hard max is the contract's
    return spec


def settings_from(values: dict, fps: float) -> GenerateSettings:
    """GenerateSettings from the panel's values (PANEL_FIELDS) and the scene's frame rate."""
    def clean(k, v):  # Blender's float properties are float32: send the decimals the user typed
        return round(float(v), 6) if FIELDS[k].type in ("float", float) else v

    return GenerateSettings(**{k: clean(k, values[k]) for k in PANEL_FIELDS if k in values},
                            fps=round(float(fps), 6))


MARKER_PREFIX = "FlowVQ "  # the timeline markers that show the emotion keys


def marker_name(emotion: str, intensity: float) -> str:
    """The timeline marker of an emotion key: "FlowVQ sad", "FlowVQ happy 0.6"."""
    return MARKER_PREFIX + emotion + ("" if math.isclose(intensity, 1.0, abs_tol=5e-4)
                                      else f" {intensity:.3g}")


def emotion_keys_from_frames(keys, frame_start: int, fps: float) -> tuple[tuple, str]:
    """The contract's `emotion_keys` from timeline keys (frame, label, intensity), in any order.

    Seconds count from the audio's first frame `frame_start` at the scene rate `fps`. A key
    before the audio is clamped: the last key at or before `frame_start` holds from the audio's
    start (0 s), earlier ones would never show and are dropped; the returned note says so ("" if
    nothing was clamped). Two keys on one frame: TakeError naming the frame.
    """
    keys = sorted((int(f), str(label), round(float(i), 6)) for f, label, i in keys)
    if not keys:
        raise TakeError("no emotion keys: add one with Add Emotion Key at Current Frame "
                        "(or set Emotion From to Label)")
    for (a, *_), (b, *_) in zip(keys, keys[1:]):
        if a == b:
            raise TakeError(f"two emotion keys at frame {a}: remove one")
    before = [k for k in keys if k[0] < frame_start]
    note = ""
    if before and not any(k[0] == frame_start for k in keys):
        kept = before[-1]
        keys = [(frame_start, kept[1], kept[2])] + [k for k in keys if k[0] > frame_start]
        dropped = len(before) - 1
        note = (f"emotion key at frame {kept[0]} is before the audio's start (frame "
                f"{frame_start}): it holds from the start"
                + (f"; {dropped} earlier key(s) dropped" if dropped else ""))
    elif before:
        keys = [k for k in keys if k[0] >= frame_start]
        note = (f"{len(before)} emotion key(s) before the audio's start (frame {frame_start}) "
                "dropped: the key at the start holds from there")
    out = tuple((label, round((f - frame_start) / fps, 6), i) for f, label, i in keys)
    return GenerateSettings(emotion_keys=out).emotion_keys, note  # the contract's checks


def with_emotion_keys(s: GenerateSettings, keys: tuple) -> GenerateSettings:
    """`s` keyed over time; `emotion`/`intensity` become the first key's (they name the take)."""
    return s.replace(emotion_keys=keys, emotion=keys[0][0], intensity=keys[0][2])


def generate_request(s: GenerateSettings, audio: bytes, reference_image: bytes | None = None) -> dict:
    request = {"type": "generate", **s.to_wire(), "audio": audio}
    if reference_image is not None:
        request["reference_image"] = reference_image
    return request


def takes_from_result(result: dict) -> list[Take]:
    """The takes of a generate result (Take.from_wire each); TakeError if malformed or empty."""
    out = []
    for i, t in enumerate(result.get("takes") or []):
        if not isinstance(t, dict):
            raise TakeError(f"take {i + 1} from the backend is not a map")
        try:
            out.append(Take.from_wire(t))
        except protocol.ProtocolError as e:
            raise TakeError(f"take {i + 1} from the backend: {e.message}") from None
    if not out:
        raise TakeError("the backend answered with no takes")
    return out


def take_name(take: Take, label: str = "") -> str:
    if take.source.startswith("livelink:"):
        stem = take.source.split(":", 1)[1].rsplit(".", 1)[0]
        return f"LiveLink {stem}"
    if not label and take.settings.emotion_keys:  # keyed: "sad-happy", each change once
        labels = [k[0] for k in take.settings.emotion_keys]
        label = "-".join(a for j, a in enumerate(labels) if j == 0 or a != labels[j - 1])
    actor = f"{take.settings.actor} " if take.settings.actor else ""  # "FlowVQ anna happy s7 t1"
    return f"FlowVQ {actor}{label or take.emotion} s{take.seed} t{take.index}"


def provenance_json(take: Take, **extra) -> str:
    return json.dumps({**take.provenance(), **extra}, sort_keys=True)


def provenance_of(text: str) -> dict:
    try:
        prov = json.loads(text) if text else {}
    except json.JSONDecodeError:
        prov = {}
    return prov if isinstance(prov, dict) else {}


def take_from(expression: np.ndarray, pose: np.ndarray | None, provenance: dict,
              names=channels.EXPRESSION_NAMES) -> Take:
    """A Take from stored model curves and a stored provenance dict."""
    exp = np.asarray(expression, np.float32)
    if pose is None:
        pose = np.zeros((exp.shape[0], channels.N_POSE), np.float32)
    try:
        return Take.from_wire({**provenance, "expression": exp, "pose": pose, "names": list(names)})
    except protocol.ProtocolError as e:
        raise TakeError(f"stored take is not valid: {e.message}") from None


def resample(take: Take, fps: float) -> Take:
    """`take` at frame rate `fps` (linear), same provenance; itself when the rate matches."""
    if math.isclose(take.fps, fps, rel_tol=1e-6):
        return take
    n = take.n_frames
    m = max(1, int(math.floor((n - 1) / take.fps * fps + 1e-6)) + 1)
    src = np.arange(n) / take.fps
    dst = np.arange(m) / fps

    def interp(a):
        return np.stack([np.interp(dst, src, a[:, j]) for j in range(a.shape[1])], 1)

    return Take(expression=interp(take.expression), pose=interp(take.pose),
                settings=take.settings.replace(fps=float(fps)), index=take.index,
                audio_sha256=take.audio_sha256, guidance_applied=take.guidance_applied,
                guidance_note=take.guidance_note, blink_starts=take.blink_starts,
                source=take.source, names=take.names)
