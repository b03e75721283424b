"""Take: one generated (or imported) performance, the settings that asked for it and what happened.

The one shape a take has everywhere: the generator returns it, the CLI writes it (`save`: take_K.npz
+ take_K.csv), the server sends it (`to_wire`), the add-on reads it (`from_wire`) and keeps its
`provenance()` on the take's Actions. `settings` is what was asked; `guidance_applied` and
`guidance_note` say what was done (0 and the reason when the phone recogniser failed).
"""
from __future__ import annotations

import csv
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .channels import EXPRESSION_NAMES, N_EXPRESSION, N_POSE, POSE_NAMES
from .protocol import BAD_REQUEST, ProtocolError
from .settings import FPS_RANGE, GenerateSettings

TAKE_FORMAT = 2  # 1: before the settings/provenance record (still read)


def _bad(msg: str) -> ProtocolError:
    return ProtocolError(BAD_REQUEST, msg)


@dataclass(frozen=True, kw_only=True)
class Take:
    expression: np.ndarray  # (T, 64) float32, channel order `names`
    pose: np.ndarray  # (T, 6) float32: pitch, yaw, roll (radians), tx, ty, tz
    settings: GenerateSettings = field(default_factory=GenerateSettings)
    index: int = 1  # take number within its request, from 1: with settings.seed it reproduces the take
    audio_sha256: str = ""
    guidance_applied: float = 0.0  # share of the mouth's motion that really came from phones
    guidance_note: str = ""  # why guidance_applied differs from settings.phone_guidance ("" if not)
    blink_starts: tuple[int, ...] = ()  # frames where a laid-over blink begins
    source: str = "flowvq"  # "flowvq" (generated) or where an imported take came from
    names: tuple[str, ...] = EXPRESSION_NAMES

    def __post_init__(self):
        exp = np.ascontiguousarray(self.expression, dtype=np.float32)
        pose = np.ascontiguousarray(self.pose, dtype=np.float32)
        object.__setattr__(self, "expression", exp)
        object.__setattr__(self, "pose", pose)
        object.__setattr__(self, "blink_starts", tuple(int(b) for b in self.blink_starts))
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        validate_curves(exp, pose, self.settings.fps)
        if len(self.names) != exp.shape[1]:
            raise _bad(f"take has {exp.shape[1]} channels but {len(self.names)} names")

    # ---- convenience -------------------------------------------------------------------------
    @property
    def fps(self) -> float:
        return self.settings.fps

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def emotion(self) -> str:
        return self.settings.emotion

    @property
    def n_frames(self) -> int:
        return int(self.expression.shape[0])

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def provenance(self) -> dict:
        """Everything that made this take, as plain JSON-able values (no curves)."""
        return {"format": TAKE_FORMAT, "settings": self.settings.to_wire(), "index": self.index,
                "audio_sha256": self.audio_sha256, "guidance_applied": self.guidance_applied,
                "guidance_note": self.guidance_note, "blink_starts": list(self.blink_starts),
                "source": self.source}

    # ---- wire ----------------------------------------------------------------------------------
    def to_wire(self) -> dict:
        return {**self.provenance(), "expression": self.expression, "pose": self.pose,
                "names": list(self.names)}

    @classmethod
    def from_wire(cls, m: dict) -> "Take":
        try:
            return cls(expression=np.asarray(m["expression"]), pose=np.asarray(m["pose"]),
                       settings=GenerateSettings.from_wire(m.get("settings") or {}),
                       index=int(m.get("index", 1)), audio_sha256=str(m.get("audio_sha256", "")),
                       guidance_applied=float(m.get("guidance_applied", 0.0)),
                       guidance_note=str(m.get("guidance_note", "")),
                       blink_starts=tuple(m.get("blink_starts", ())),
                       source=str(m.get("source", "flowvq")),
                       names=tuple(m.get("names", EXPRESSION_NAMES)))
        except (KeyError, TypeError, ValueError) as e:
            raise _bad(f"not a take: {type(e).__name__}: {e}") from None

    # ---- files ---------------------------------------------------------------------------------
    def save(self, directory: str | Path, index: int | None = None) -> Path:
        """Write take_<index>.npz and take_<index>.csv atomically; returns the npz path."""
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise _bad(f"cannot write takes into {directory}: it (or a folder above it) is a file") from None
        except PermissionError:
            raise _bad(f"cannot write takes into {directory}: permission denied") from None
        path = directory / f"take_{self.index if index is None else index}.npz"
        tmp = path.with_suffix(".tmp.npz")
        s = self.settings
        np.savez(
            tmp, expression=self.expression, pose=self.pose, names=np.array(self.names),
            pose_names=np.array(POSE_NAMES),
            # the format-1 keys, so older readers still find them
            fps=np.float64(s.fps), emotion=np.array(s.emotion), intensity=np.float32(s.intensity),
            seed=np.int64(s.seed), take=np.int64(self.index), temperature=np.float32(s.temperature),
            blinks=np.bool_(s.blinks), phone_guidance=np.float32(self.guidance_applied),
            audio_sha256=np.array(self.audio_sha256),
            provenance=np.array(json.dumps(self.provenance())))
        tmp.replace(path)  # a reader never sees a half-written take
        self.save_csv(path.with_suffix(".csv"))
        return path

    def save_csv(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_suffix(".tmp.csv")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["frame", "time", *self.names, *POSE_NAMES])
            for t in range(self.n_frames):
                w.writerow([t, f"{t / self.fps:.6f}", *(f"{v:.6f}" for v in self.expression[t]),
                            *(f"{v:.6f}" for v in self.pose[t])])
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Take":
        path = Path(path)
        if not path.is_file():
            raise _bad(f"take file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                if "provenance" in z:
                    prov = json.loads(str(z["provenance"]))
                    return cls.from_wire({**prov, "expression": z["expression"], "pose": z["pose"],
                                          "names": [str(n) for n in z["names"]]})
                return cls._load_v1(z)
        except ProtocolError as e:
            raise _bad(f"not a FlowVQ take file: {path} ({e.message})") from None
        except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise _bad(f"not a FlowVQ take file: {path} ({e})") from None

    @classmethod
    def _load_v1(cls, z) -> "Take":
        def get(key, conv, default):
            return conv(z[key]) if key in z else default

        guided = round(get("phone_guidance", float, 0.0), 6)  # stored float32: the user's decimals
        settings = GenerateSettings(
            emotion=get("emotion", str, "talking"), intensity=get("intensity", float, 1.0),
            seed=get("seed", int, 0), fps=float(z["fps"]),
            temperature=round(get("temperature", float, 1.0), 6), blinks=get("blinks", bool, True),
            phone_guidance=guided)
        return cls(expression=z["expression"], pose=z["pose"], settings=settings,
                   index=get("take", int, 1), audio_sha256=get("audio_sha256", str, ""),
                   guidance_applied=guided,
                   names=tuple(str(n) for n in z["names"]) if "names" in z else EXPRESSION_NAMES)


def validate_curves(expression: np.ndarray, pose: np.ndarray, fps: float) -> None:
    """Shapes, finiteness and frame rate of a pair of curves; ProtocolError says what is wrong."""
    if expression.ndim != 2 or expression.shape[1] != N_EXPRESSION:
        raise _bad(f"expression must be (T, {N_EXPRESSION}), got {tuple(expression.shape)}")
    if pose.ndim != 2 or pose.shape[1] != N_POSE:
        raise _bad(f"pose must be (T, {N_POSE}), got {tuple(pose.shape)}")
    if expression.shape[0] != pose.shape[0]:
        raise _bad(f"expression has {expression.shape[0]} frames but pose has {pose.shape[0]}")
    if expression.shape[0] == 0:
        raise _bad("a take needs at least one frame")
    if not (np.isfinite(expression).all() and np.isfinite(pose).all()):
        raise _bad("expression and pose must be finite (no NaN or inf)")
    if not math.isfinite(fps) or not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        raise _bad(f"fps must be between {FPS_RANGE[0]:g} and {FPS_RANGE[1]:g}, got {fps}")
