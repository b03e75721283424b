"""GenerateSettings: every setting of a generate request, its range and default, declared once.

The CLI builds its flags from it (`add_arguments`), the protocol parses it (`from_wire`), the
generator reads it, the add-on builds its panel properties from `FIELDS` and stores it with every
take (`to_wire`). A value out of range raises ProtocolError(bad_request) naming the field and the
range, whichever side built it. Shaped after Dream Textures' GenerationArguments.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .channels import EMOTIONS, INTENSITY_RANGE, emotion_index
from .protocol import BAD_REQUEST, ProtocolError

MAX_TAKES = 64  # per request; the add-on's slider and the CLI share it
PHONE_GUIDANCE = 0.7  # default share of the mouth's motion from recognised phones (docs/fcg.md)
MAX_SEED = 2**63 - 1
FPS_RANGE = (1.0, 240.0)


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
    phone_guidance: float = field(default=PHONE_GUIDANCE, metadata=_spec(
        0.0, 1.0, label="Phone Guidance",
        help="share of the mouth's motion taken from the phones recognised in the audio "
             "(0: the model's mouth alone)"))

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, _check(f, getattr(self, f.name)))

    # ---- wire ----------------------------------------------------------------------------------
    def to_wire(self) -> dict:
        return asdict(self)

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
            if f.type in ("bool", bool):  # only default-on switches exist: the flag turns it off
                parser.add_argument(flag, dest=f.name, action="store_false", help=md["flag_help"] or md["help"])
                continue
            kind = {"float": float, "int": int, "str": str}[f.type]
            if md["choices"]:
                rng = f": one of {', '.join(md['choices'])}"
            elif md["hi"] == MAX_SEED:
                rng = f" ({md['lo']} or more"
            else:
                rng = f" ({md['lo']:g}..{md['hi']:g}"
            helptext = md["help"] + rng + (f", default {f.default})" if not md["choices"] else
                                           f" (default {f.default})")
            parser.add_argument(flag, dest=f.name, type=kind, default=f.default, help=helptext)

    @classmethod
    def from_args(cls, args) -> "GenerateSettings":
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})


FIELDS = {f.name: f for f in fields(GenerateSettings)}


def _bad(msg: str) -> ProtocolError:
    return ProtocolError(BAD_REQUEST, msg)


def _check(f, v: Any) -> Any:
    md, name = f.metadata, f.name
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
