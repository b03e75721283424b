"""GenerateSettings: every setting of a generate request, its range and default, declared once.

The CLI builds its flags from it (`add_arguments`), the protocol parses it (`from_wire`), the
generator reads it, the add-on builds its panel properties from `FIELDS` and stores it with every
take (`to_wire`). A value out of range raises ProtocolError(bad_request) naming the field and the
range, whichever side built it. Shaped after Dream Textures' GenerationArguments.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .channels import EMOTIONS, INTENSITY_RANGE, emotion_index
from .protocol import BAD_REQUEST, ProtocolError

MAX_TAKES = 64  # per request; the add-on's slider and the CLI share it
PHONE_GUIDANCE = 0.7  # default share of the mouth's motion from recognised phones (docs/fcg.md)
MAX_SEED = 2**63 - 1
MAX_KEYS = 64  # emotion keys per request
KEY_BLEND_S = 0.6  # an emotion key's transition: this long, centred on the key's time
FPS_RANGE = (1.0, 240.0)
ACTOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # an actor profile's id (backend/actor/)
# `flowvq actor learn`'s stages after one track_K per video, in order: each finished one is recorded in
# the profile's work/timing.json, which is how a client that started it follows it (the add-on)
ACTOR_LEARN_STAGES = ("dataset", "finetune", "estimate", "voice", "select", "fit", "bank")


def _spec(lo=None, hi=None, label: str = "", help: str = "", flag: str | None = None,
          flag_help: str = "", choices: tuple = ()) -> dict:
    """lo/hi: the range; label/help: the panel's; flag/flag_help: the CLI's when it differs."""
    return {"lo": lo, "hi": hi, "label": label, "help": help, "flag": flag, "flag_help": flag_help,
            "choices": choices}


@dataclass(frozen=True, kw_only=True)  # keyword-only: the field list grows with the protocol
class GenerateSettings:
    emotion: str = field(default="talking", metadata=_spec(
        label="Emotion", help="emotion class", choices=EMOTIONS))
    intensity: float = field(default=1.0, metadata=_spec(
        *INTENSITY_RANGE, label="Intensity", help="0 neutral, 1 as trained, 2 exaggerated"))
    takes: int = field(default=1, metadata=_spec(
        1, MAX_TAKES, label="Takes", help="number of takes, each a new random performance"))
    seed: int = field(default=0, metadata=_spec(
        0, MAX_SEED, label="Seed", help="same seed -> same takes; take k depends only on (seed, k)"))
    fps: float = field(default=25.0, metadata=_spec(
        *FPS_RANGE, label="FPS", help="frame rate of the curves (24, 25, 30, 23.976...)"))
    temperature: float = field(default=1.0, metadata=_spec(
        0.0, 3.0, label="Temperature", help="sampling temperature: 0 the most likely motion"))
    blinks: bool = field(default=True, metadata=_spec(
        label="Blinks", help="give each take its own blinks (off for a rig with its own blink pass)",
        flag="--no-blinks", flag_help="no blinks (for a rig with its own blink pass)"))
    emotion_keys: tuple = field(default=(), metadata=_spec(
        0, MAX_KEYS, label="Emotion Keys",
        help="emotion over time: (label, seconds, intensity) keys, sorted by time; the emotion holds "
             "from one key to the next and changes smoothly around each key (empty: `emotion` and "
             "`intensity` throughout). In the CLI: --emotion \"sad:0,happy@0.6:4.2\"", flag="--emotion-keys"))
    phone_guidance: float = field(default=PHONE_GUIDANCE, metadata=_spec(
        0.0, 1.0, label="Phone Guidance",
        help="share of the mouth's motion taken from the phones recognised in the audio "
             "(0: the model's mouth alone)"))
    actor: str = field(default="", metadata=_spec(
        label="Actor",
        help="actor profile id (`flowvq actor learn`): that person's fine-tuned model and their lead, "
             "mouth range and head motion; empty: the default model",
        flag="--actor-id"))

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, _check(f, getattr(self, f.name)))

    # ---- wire ----------------------------------------------------------------------------------
    def to_wire(self) -> dict:
        out = asdict(self)
        out["emotion_keys"] = [list(k) for k in self.emotion_keys]  # msgpack/JSON lists
        return out

    @property
    def keyed(self) -> bool:
        return bool(self.emotion_keys)

    @classmethod
    def from_wire(cls, m: dict) -> "GenerateSettings":
        """The settings fields of a map (a request, a stored take); absent or None -> default."""
        return cls(**{f.name: m[f.name] for f in fields(cls) if m.get(f.name) is not None})

    def replace(self, **changes) -> "GenerateSettings":
        return type(self)(**{**asdict(self), **changes})

    # ---- command line --------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser, skip: tuple[str, ...] = ()) -> None:
        """One argparse flag per field, with the field's default, range and help."""
        for f in fields(cls):
            if f.name in skip:
                continue
            md = f.metadata
            flag = md["flag"] or "--" + f.name.replace("_", "-")
            if f.name == "emotion_keys":  # given through --emotion "label:seconds,..." (from_args)
                continue
            if f.type in ("bool", bool):  # only default-on switches exist: the flag turns it off
                parser.add_argument(flag, dest=f.name, action="store_false", help=md["flag_help"] or md["help"])
                continue
            kind = {"float": float, "int": int, "str": str}[f.type]
            if kind is str and not md["choices"]:  # free text (actor): no range to print
                parser.add_argument(flag, dest=f.name, type=str, default=f.default, help=md["flag_help"] or md["help"])
                continue
            if md["choices"]:
                rng = f": one of {', '.join(md['choices'])}; or keys over time, " \
                      "\"sad:0,happy@0.6:4.2\" (label[@intensity]:seconds)"
            elif md["hi"] == MAX_SEED:
                rng = f" ({md['lo']} or more"
            else:
                rng = f" ({md['lo']:g}..{md['hi']:g}"
            helptext = md["help"] + rng + (f", default {f.default})" if not md["choices"] else
                                           f" (default {f.default})")
            parser.add_argument(flag, dest=f.name, type=kind, default=f.default, help=helptext)

    @classmethod
    def from_args(cls, args) -> "GenerateSettings":
        values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        if ":" in str(values.get("emotion", "")):  # --emotion "sad:0,happy@0.6:4.2": keys over time
            values["emotion_keys"] = parse_emotion_keys(values["emotion"], values.get("intensity", 1.0))
            values["emotion"] = values["emotion_keys"][0][0]
        return cls(**values)


FIELDS = {f.name: f for f in fields(GenerateSettings)}


def _bad(msg: str) -> ProtocolError:
    return ProtocolError(BAD_REQUEST, msg)


def parse_emotion_keys(text: str, intensity: float = 1.0) -> tuple:
    """ "sad:0,happy@0.6:4.2" -> (("sad", 0.0, intensity), ("happy", 4.2, 0.6)); refusals name the key."""
    keys = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        label, sep, when = item.rpartition(":")
        if not sep or not label:
            raise _bad(f"emotion key {item!r} must be label:seconds or label@intensity:seconds")
        label, _, amount = label.partition("@")
        try:
            keys.append((label.strip(), float(when), float(amount) if amount else float(intensity)))
        except ValueError:
            raise _bad(f"emotion key {item!r}: seconds and intensity must be numbers") from None
    return tuple(keys)


def _check_keys(v: Any) -> tuple:
    if isinstance(v, str):
        v = parse_emotion_keys(v)
    if not isinstance(v, (list, tuple)):
        raise _bad(f"field 'emotion_keys' must be a list of [label, seconds, intensity], got {type(v).__name__}")
    if len(v) > MAX_KEYS:
        raise _bad(f"field 'emotion_keys' has {len(v)} keys; the limit is {MAX_KEYS}")
    out, last = [], -1.0
    for i, k in enumerate(v):
        if not isinstance(k, (list, tuple)) or len(k) not in (2, 3):
            raise _bad(f"emotion key {i} must be [label, seconds] or [label, seconds, intensity], got {k!r}")
        label, when, amount = (*k, 1.0) if len(k) == 2 else k
        try:
            label = EMOTIONS[emotion_index(label)]
        except ValueError as e:
            raise _bad(f"emotion key {i}: {e}") from None
        if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when) or when < 0:
            raise _bad(f"emotion key {i}: seconds must be a number >= 0, got {when!r}")
        if when <= last:
            raise _bad(f"emotion keys must be in increasing time: key {i} at {when} s follows {last} s")
        lo, hi = INTENSITY_RANGE
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not lo <= amount <= hi:
            raise _bad(f"emotion key {i}: intensity must be between {lo:g} and {hi:g}, got {amount!r}")
        out.append((label, float(when), float(amount)))
        last = float(when)
    return tuple(out)


def emotion_track(settings: "GenerateSettings", n_frames: int, fps: float):
    """(T, E) emotion weights and (T,) intensity per frame: the keys held between their times and
    blended with a smoothstep over KEY_BLEND_S around each key (numpy; constant without keys)."""
    import numpy as np

    t = np.arange(n_frames) / fps
    keys = settings.emotion_keys or ((settings.emotion, 0.0, settings.intensity),)
    weights = np.zeros((n_frames, len(EMOTIONS)), np.float64)
    weights[:, emotion_index(keys[0][0])] = 1.0
    intensity = np.full(n_frames, keys[0][2], np.float64)
    for label, when, amount in keys[1:]:
        x = np.clip((t - (when - KEY_BLEND_S / 2)) / KEY_BLEND_S, 0.0, 1.0)
        a = x * x * (3 - 2 * x)  # smoothstep: no step in value or slope at either end
        target = np.zeros(len(EMOTIONS))
        target[emotion_index(label)] = 1.0
        weights = (1 - a)[:, None] * weights + a[:, None] * target
        intensity = (1 - a) * intensity + a * amount
    return weights.astype(np.float32), intensity.astype(np.float32)


def _check(f, v: Any) -> Any:
    md, name = f.metadata, f.name
    if name == "emotion_keys":
        return _check_keys(v)
    if f.type in ("bool", bool):
        if not isinstance(v, bool):
            raise _bad(f"field '{name}' must be true or false, got {type(v).__name__}")
        return v
    if f.type in ("str", str):
        if not isinstance(v, str):
            raise _bad(f"field '{name}' must be a string, got {type(v).__name__}")
        if name == "emotion":
            try:
                return EMOTIONS[emotion_index(v)]
            except ValueError as e:
                raise _bad(str(e)) from None
        if name == "actor" and v and not ACTOR_ID.fullmatch(v):
            raise _bad(f"field 'actor' must be an actor profile id (letters, digits, '.', '_', '-', up to 64, "
                       f"starting with a letter or digit) or empty, got {v[:80]!r}")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (f.type in ("int", int) and
                                                                  not isinstance(v, int)):
        what = "an integer" if f.type in ("int", int) else "a number"
        raise _bad(f"field '{name}' must be {what}, got {type(v).__name__} {v!r}")
    if f.type in ("int", int):
        v = int(v)
        if not md["lo"] <= v <= md["hi"]:
            raise _bad(f"field '{name}' must be between {md['lo']} and {md['hi']}, got {v}")
        return v
    v = float(v)
    if not math.isfinite(v) or not md["lo"] <= v <= md["hi"]:
        raise _bad(f"field '{name}' must be between {md['lo']:g} and {md['hi']:g}, got {v}")
    return v
