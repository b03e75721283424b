"""Map FlowVQ's 64 named channels onto a rig's shape keys by name, with per-channel calibration.

bpy-free. Names match case-insensitively and across the usual side conventions
(`eyeBlinkLeft`, `eyeBlink_L`, `EyeBlink.L`, `eye_blink_left`, `Left_EyeBlink`...). A channel
without a side drives every sided key of the same base (`browInnerUp` -> `browInnerUp_L` and
`browInnerUp_R`: a "split"); a sided channel pair drives an unsided key with the pair's mean
(a "merge"). Channels that find no key are reported, never silently dropped.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

LEFT, RIGHT, NONE = "L", "R", ""

# Spellings rigs use for the same movement that plain normalisation cannot unify.
ALIASES = {
    "cheekraiser": "cheekraise",   # ICT-FaceKit's AU6 shape vs FlowVQ's cheekRaise extra
    "mouthrolllowerlip": "mouthrolllower",
    "mouthrollupperlip": "mouthrollupper",
}

# Side tokens, tried in order. A side needs a separator or a camelCase capital in front of it,
# so that names merely ending in "left"/"l"/"r" (chinCleft, pupil) are not split by accident.
_SUFFIX_WORD = re.compile(r"^(?P<base>.+?)[\s._\-]+(?P<side>left|right)$", re.IGNORECASE)
_SUFFIX_CAMEL_WORD = re.compile(r"^(?P<base>.*[a-z0-9])(?P<side>Left|Right|LEFT|RIGHT)$")
_SUFFIX_SEP = re.compile(r"^(?P<base>.+?)[\s._\-](?P<side>[lr])$", re.IGNORECASE)
_SUFFIX_CAMEL = re.compile(r"^(?P<base>.*[a-z0-9])(?P<side>[LR])$")
_PREFIX_WORD = re.compile(r"^(?P<side>left|right)[\s._\-]+(?P<base>.+)$", re.IGNORECASE)
_PREFIX_CAMEL_WORD = re.compile(r"^(?P<side>Left|Right)(?P<base>[A-Z].*)$")
_PREFIX_SEP = re.compile(r"^(?P<side>[lr])[\s._\-](?P<base>.+)$", re.IGNORECASE)
_PATTERNS = (_SUFFIX_WORD, _SUFFIX_CAMEL_WORD, _SUFFIX_SEP, _SUFFIX_CAMEL, _PREFIX_WORD,
             _PREFIX_CAMEL_WORD, _PREFIX_SEP)


def split_name(name: str) -> tuple[str, str]:
    """(normalised base, side) of a channel or shape-key name: ('eyeblink', 'L')."""
    name = name.strip()
    side = NONE
    for pattern in _PATTERNS:
        m = pattern.match(name)
        if m and re.search(r"[A-Za-z]", m.group("base")):
            name, side = m.group("base"), m.group("side")[0].upper()
            break
    base = re.sub(r"[^0-9a-z]", "", name.lower())
    return ALIASES.get(base, base), side


@dataclass(frozen=True)
class Drive:
    """One shape key driven by the mean of one or two channels."""
    key: str
    channels: tuple[int, ...]
    kind: str  # "exact" (same base and side), "split" (one channel -> sided key), "merge" (L+R)


@dataclass(frozen=True)
class Mapping:
    """How a rig's shape keys are driven by the model's channels."""
    channel_names: tuple[str, ...]
    drives: tuple[Drive, ...]
    unmatched_channels: tuple[str, ...]  # channels no key follows
    unused_keys: tuple[str, ...]         # rig keys no channel drives

    @property
    def split(self) -> dict[str, tuple[str, ...]]:
        """channel name -> the sided keys it drives alone (e.g. browInnerUp -> _L, _R)."""
        out: dict[str, list[str]] = {}
        for d in self.drives:
            if d.kind == "split":
                out.setdefault(self.channel_names[d.channels[0]], []).append(d.key)
        return {k: tuple(v) for k, v in out.items()}

    @property
    def merged(self) -> dict[str, tuple[str, ...]]:
        """unsided key -> the pair of sided channels averaged into it."""
        return {d.key: tuple(self.channel_names[c] for c in d.channels)
                for d in self.drives if d.kind == "merge"}

    def summary(self, primary: int = 52) -> str:
        """One readable paragraph for a Blender report: matched, split, unmatched."""
        primary_names = set(self.channel_names[:primary])
        missing = [n for n in self.unmatched_channels if n in primary_names]
        extras = [n for n in self.unmatched_channels if n not in primary_names]
        parts = [f"{len(self.drives)} shape keys driven"]
        if self.split:
            parts.append("split: " + ", ".join(f"{c} -> {'/'.join(k)}"
                                              for c, k in self.split.items()))
        if self.merged:
            parts.append("merged: " + ", ".join(f"{k} <- {'+'.join(c)}"
                                               for k, c in self.merged.items()))
        parts.append("unmatched channels: " + (", ".join(missing) if missing else "none"))
        if extras:
            parts.append(f"FlowVQ extras without a key: {', '.join(extras)}")
        return "; ".join(parts)


def match(channel_names: Sequence[str], key_names: Iterable[str], mirror: bool = False) -> Mapping:
    """Match channels to shape keys. `mirror` swaps left and right (rigs named from the viewer)."""
    keys = [k for k in key_names if k.lower() not in ("basis", "reference")]
    channels = list(channel_names)
    flip = {LEFT: RIGHT, RIGHT: LEFT, NONE: NONE}
    by_channel: dict[tuple[str, str], int] = {}
    for i, name in enumerate(channels):
        base, side = split_name(name)
        by_channel.setdefault((base, flip[side] if mirror else side), i)
    drives: list[Drive] = []
    used_channels: set[int] = set()
    unused: list[str] = []
    for key in keys:
        base, side = split_name(key)
        if (base, side) in by_channel:
            idx = (by_channel[(base, side)],)
            kind = "exact"
        elif side != NONE and (base, NONE) in by_channel:
            idx, kind = (by_channel[(base, NONE)],), "split"
        elif side == NONE and (base, LEFT) in by_channel and (base, RIGHT) in by_channel:
            idx, kind = (by_channel[(base, LEFT)], by_channel[(base, RIGHT)]), "merge"
        else:
            unused.append(key)
            continue
        drives.append(Drive(key, idx, kind))
        used_channels.update(idx)
    unmatched = tuple(n for i, n in enumerate(channels) if i not in used_channels)
    return Mapping(tuple(channels), tuple(drives), unmatched, tuple(unused))


# ---------------------------------------------------------------------------- calibration

@dataclass(frozen=True)
class Calibration:
    """Per-channel value' = gain * value + offset, applied before the values become keys."""
    gains: dict[str, float] = field(default_factory=dict)
    offsets: dict[str, float] = field(default_factory=dict)
    mirror: bool = False
    clamp: tuple[float, float] | None = None  # e.g. (0, 1) for rigs whose sliders stop there

    def vectors(self, channel_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        gain = np.array([self.gains.get(n, 1.0) for n in channel_names], np.float32)
        offset = np.array([self.offsets.get(n, 0.0) for n in channel_names], np.float32)
        return gain, offset

    def to_json(self) -> str:
        doc = {"format": 1, "kind": "flowvq_calibration",
               "gains": {k: float(v) for k, v in sorted(self.gains.items()) if v != 1.0},
               "offsets": {k: float(v) for k, v in sorted(self.offsets.items()) if v != 0.0},
               "mirror": bool(self.mirror),
               "clamp": list(self.clamp) if self.clamp is not None else None}
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Calibration":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"calibration preset is not valid JSON ({e.msg}, line {e.lineno})") \
                from None
        if not isinstance(doc, dict) or doc.get("kind") != "flowvq_calibration":
            raise ValueError("not a FlowVQ calibration preset (kind != 'flowvq_calibration')")
        if doc.get("format") != 1:
            raise ValueError(f"calibration preset format {doc.get('format')!r} is not supported "
                             "(this add-on reads format 1)")

        def table(name: str) -> dict[str, float]:
            t = doc.get(name) or {}
            if not isinstance(t, dict) or not all(
                    isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) for k, v in t.items()):
                raise ValueError(f"calibration preset field '{name}' must map names to numbers")
            return {k: float(v) for k, v in t.items()}

        clamp = doc.get("clamp")
        if clamp is not None:
            if not (isinstance(clamp, list) and len(clamp) == 2
                    and all(isinstance(v, (int, float)) for v in clamp) and clamp[0] < clamp[1]):
                raise ValueError("calibration preset field 'clamp' must be [low, high] or null")
            clamp = (float(clamp[0]), float(clamp[1]))
        return cls(gains=table("gains"), offsets=table("offsets"),
                   mirror=bool(doc.get("mirror", False)), clamp=clamp)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def key_values(mapping: Mapping, expression: np.ndarray,
               calibration: Calibration = Calibration()) -> dict[str, np.ndarray]:
    """Shape-key name -> (T,) float32 values for one take's (T, C) expression curves."""
    expression = np.asarray(expression, np.float32)
    if expression.ndim != 2 or expression.shape[1] != len(mapping.channel_names):
        raise ValueError(f"expression must have shape (T, {len(mapping.channel_names)}), "
                         f"got {list(expression.shape)}")
    gain, offset = calibration.vectors(mapping.channel_names)
    calibrated = expression * gain + offset
    if calibration.clamp is not None:
        calibrated = np.clip(calibrated, *calibration.clamp)
    out = {}
    for d in mapping.drives:
        v = calibrated[:, d.channels[0]] if len(d.channels) == 1 \
            else calibrated[:, list(d.channels)].mean(axis=1)
        out[d.key] = np.ascontiguousarray(v, dtype=np.float32)
    return out
