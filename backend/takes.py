"""A take: one sampled performance (expression + pose curves) and its files on disk.

`DIR/take_K.npz` holds the arrays and their provenance; `DIR/take_K.csv` holds the same curves
with a header of channel names, one row per frame, for spreadsheets and DCC tools.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowvq_shared.channels import EMOTIONS, EXPRESSION_NAMES, N_EXPRESSION, N_POSE, POSE_NAMES

from .errors import BadRequest


@dataclass(frozen=True)
class Take:
    expression: np.ndarray  # (T, 64) float32, channel order EXPRESSION_NAMES
    pose: np.ndarray  # (T, 6) float32: pitch, yaw, roll (radians), tx, ty, tz
    fps: float
    emotion: str = "talking"
    intensity: float = 1.0
    seed: int = 0  # the request's seed; with `index` it reproduces this take exactly
    audio_sha256: str = ""
    index: int = 1  # take number within its request, from 1
    temperature: float = 1.0
    blinks: bool = True  # with seed, index, temperature and the audio: everything that made this take
    phone_guidance: float = 0.0  # files from before phone guidance were made without it
    names: tuple[str, ...] = field(default=EXPRESSION_NAMES)

    def __post_init__(self):
        exp = np.ascontiguousarray(self.expression, dtype=np.float32)
        pose = np.ascontiguousarray(self.pose, dtype=np.float32)
        object.__setattr__(self, "expression", exp)
        object.__setattr__(self, "pose", pose)
        validate_curves(exp, pose, self.fps)
        if len(self.names) != exp.shape[1]:
            raise BadRequest(f"take has {exp.shape[1]} channels but {len(self.names)} names")

    @property
    def n_frames(self) -> int:
        return int(self.expression.shape[0])

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def save(self, directory: str | Path, index: int) -> Path:
        """Write take_<index>.npz and take_<index>.csv; returns the npz path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"take_{index}.npz"
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            expression=self.expression,
            pose=self.pose,
            names=np.array(self.names),
            pose_names=np.array(POSE_NAMES),
            fps=np.float64(self.fps),
            emotion=np.array(self.emotion),
            intensity=np.float32(self.intensity),
            seed=np.int64(self.seed),
            take=np.int64(self.index),
            temperature=np.float32(self.temperature),
            blinks=np.bool_(self.blinks),
            phone_guidance=np.float32(self.phone_guidance),
            audio_sha256=np.array(self.audio_sha256),
        )
        tmp.replace(path)  # a reader never sees a half-written take
        self._save_csv(path.with_suffix(".csv"))
        return path

    def _save_csv(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.csv")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["frame", "time", *self.names, *POSE_NAMES])
            for t in range(self.n_frames):
                w.writerow([t, f"{t / self.fps:.6f}",
                            *(f"{v:.6f}" for v in self.expression[t]),
                            *(f"{v:.6f}" for v in self.pose[t])])
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "Take":
        path = Path(path)
        if not path.is_file():
            raise BadRequest(f"take file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(
                    expression=z["expression"],
                    pose=z["pose"],
                    fps=float(z["fps"]),
                    emotion=str(z["emotion"]) if "emotion" in z else "talking",
                    intensity=float(z["intensity"]) if "intensity" in z else 1.0,
                    seed=int(z["seed"]) if "seed" in z else 0,
                    audio_sha256=str(z["audio_sha256"]) if "audio_sha256" in z else "",
                    index=int(z["take"]) if "take" in z else 1,
                    # stored as float32: rounded back to the few decimals a user sets
                    temperature=round(float(z["temperature"]), 6) if "temperature" in z else 1.0,
                    blinks=bool(z["blinks"]) if "blinks" in z else True,
                    phone_guidance=round(float(z["phone_guidance"]), 6) if "phone_guidance" in z else 0.0,
                    names=tuple(str(n) for n in z["names"]) if "names" in z else EXPRESSION_NAMES,
                )
        except (KeyError, ValueError, OSError) as e:
            raise BadRequest(f"not a FlowVQ take file: {path} ({e})") from None


def validate_curves(expression: np.ndarray, pose: np.ndarray, fps: float) -> None:
    """Shapes, finiteness and frame rate of a pair of curves; BadRequest says what is wrong."""
    if expression.ndim != 2 or expression.shape[1] != N_EXPRESSION:
        raise BadRequest(f"expression must be (T, {N_EXPRESSION}), got {tuple(expression.shape)}")
    if pose.ndim != 2 or pose.shape[1] != N_POSE:
        raise BadRequest(f"pose must be (T, {N_POSE}), got {tuple(pose.shape)}")
    if expression.shape[0] != pose.shape[0]:
        raise BadRequest(f"expression has {expression.shape[0]} frames but pose has {pose.shape[0]}")
    if expression.shape[0] == 0:
        raise BadRequest("a take needs at least one frame")
    if not (np.isfinite(expression).all() and np.isfinite(pose).all()):
        raise BadRequest("expression and pose must be finite (no NaN or inf)")
    validate_fps(fps)


def validate_fps(fps: float) -> float:
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise BadRequest(f"fps must be a number, got {fps!r}") from None
    if not math.isfinite(fps) or not 1.0 <= fps <= 240.0:
        raise BadRequest(f"fps must be between 1 and 240, got {fps}")
    return fps


def validate_emotion(label) -> str:
    from flowvq_shared.channels import emotion_index

    try:
        return EMOTIONS[emotion_index(label)]
    except ValueError as e:
        raise BadRequest(str(e)) from None
