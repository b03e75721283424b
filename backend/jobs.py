"""The product's operations, shared by the CLI and the server: validated inputs in, results out.

Models load lazily and are cached per process: the server's single worker thread and the CLI
both go through `models()`. Anything a user got wrong raises a FlowVQError subclass.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from flowvq_shared.messages import PHONE_GUIDANCE, generate_settings
from flowvq_shared.protocol import ProtocolError

from .audio import Audio
from .errors import BadRequest, NotImplementedYet
from .takes import Take

Progress = Callable[[float, str], None]
DEFAULT_FCG_CHECKPOINT = Path(__file__).resolve().parent / "assets" / "fcg_default.pt"


def _quiet(_f: float, _s: str) -> None:
    pass


@dataclass(frozen=True, kw_only=True)  # keyword-only: the field list grows with the protocol
class GenerateSettings:
    emotion: str = "talking"
    intensity: float = 1.0
    takes: int = 1
    seed: int = 0
    fps: float = 25.0
    temperature: float = 1.0
    blinks: bool = True
    phone_guidance: float = PHONE_GUIDANCE

    def __post_init__(self):
        try:
            valid = generate_settings(asdict(self))
        except ProtocolError as e:
            raise BadRequest(e.message) from None
        for name, value in valid.items():
            object.__setattr__(self, name, value)


class Models:
    """Lazily loaded models, one of each per process (loading is the slow part)."""

    def __init__(self, fcg_checkpoint: str | Path | None = None, device: str | None = None):
        self.fcg_checkpoint = fcg_checkpoint
        self.device = device
        self._lock = threading.Lock()
        self._generator = None
        self._face_models: dict[str, object] = {}

    def generator(self):
        with self._lock:
            if self._generator is None:
                try:
                    from .fcg import load_generator
                except ImportError as e:
                    raise NotImplementedYet(f"the FCG generator is not built yet ({e})") from None
                self._generator = load_generator(self.fcg_checkpoint, device=self.device)
            return self._generator

    def face_model(self, name: str = "default"):
        with self._lock:
            if name not in self._face_models:
                try:
                    from .facemodel import load_face_model
                except ImportError as e:
                    raise NotImplementedYet(f"the face model is not built yet ({e})") from None
                self._face_models[name] = load_face_model(name)
            return self._face_models[name]


def track_image(rgb: np.ndarray, model: str = "default", progress: Progress = _quiet):
    try:
        from .tracker import track
    except ImportError as e:
        raise NotImplementedYet(f"the tracker is not built yet ({e})") from None
    return track(rgb, model=model, progress=progress)


def generate(models: Models, audio: Audio, settings: GenerateSettings,
             reference_rgb: np.ndarray | None = None, progress: Progress = _quiet,
             cancel: threading.Event | None = None) -> list[Take]:
    """Audio + emotion -> `settings.takes` takes; a reference face transfers its emotion."""
    reference = None
    if reference_rgb is not None:
        progress(0.0, "reading the emotion reference")
        reference = track_image(reference_rgb).expression[0]
    gen = models.generator()
    results = gen.generate(
        audio.samples, emotion=settings.emotion, intensity=settings.intensity,
        n_takes=settings.takes, seed=settings.seed, fps=settings.fps,
        temperature=settings.temperature, blinks=settings.blinks, reference_expression=reference,
        phone_guidance=settings.phone_guidance,
        progress=progress, cancel=cancel)
    return [Take(expression=exp, pose=pose, fps=settings.fps, emotion=settings.emotion,
                 intensity=settings.intensity, seed=settings.seed, index=k + 1,
                 temperature=settings.temperature, blinks=settings.blinks,
                 phone_guidance=settings.phone_guidance,
                 audio_sha256=audio.sha256)
            for k, (exp, pose) in enumerate(results)]
