"""The product's operations, shared by the CLI, the server (and a Ray task): validated inputs in,
results out. Pure: a request and the models in, arrays out; no files, no sockets.

Models load lazily and are cached per `Models` object: the server's single worker thread and the CLI
both go through one. `loading()` says which are still loading (the server's hello reports it).
Anything a user got wrong raises a FlowVQError subclass.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import numpy as np

from flowvq_shared.settings import GenerateSettings
from flowvq_shared.takes import Take

from .audio import Audio
from .errors import NotImplementedYet

Progress = Callable[[float, str], None]


def _quiet(_f: float, _s: str) -> None:
    pass


class Models:
    """Lazily loaded models, one of each per Models object (loading is the slow part)."""

    def __init__(self, fcg_checkpoint: str | Path | None = None, device: str | None = None):
        self.fcg_checkpoint = fcg_checkpoint
        self.device = device
        self._lock = threading.Lock()
        self._generator = None
        self._face_models: dict[str, object] = {}
        self._actors: dict[tuple[str, bool], tuple[float, object]] = {}  # (folder, fine_tuned) -> (actor.json's mtime, generator)
        self._loading: set[str] = set()

    def loading(self) -> list[str]:
        """Models being loaded right now (what a request arriving now would wait for)."""
        return sorted(self._loading)

    @property
    def generator_loaded(self):
        """The generator if it is loaded, else None (never loads)."""
        return self._generator

    def generator(self):
        with self._lock:
            if self._generator is None:
                self._loading.add("fcg")
                try:
                    from .generate import load_generator
                    self._generator = load_generator(self.fcg_checkpoint, device=self.device)
                except ImportError as e:
                    raise NotImplementedYet(f"the FCG generator is not built yet ({e})") from None
                finally:
                    self._loading.discard("fcg")
            return self._generator

    def actor_generator(self, path: str | Path, fine_tuned: bool = False):
        """An actor profile's generator (backend/actor/), loaded strictly once per folder (and per
        `fine_tuned`: its fcg.pt whatever the held-out selection chose, for dubbing)."""
        folder = Path(path).resolve()
        key = (str(folder), bool(fine_tuned))
        index = folder / "actor.json"
        stamp = index.stat().st_mtime if index.is_file() else -1.0  # a re-learned profile is reloaded
        with self._lock:
            cached = self._actors.get(key)
            if cached is None or cached[0] != stamp:
                self._loading.add(f"actor:{Path(path).name}")
                try:
                    from .actor import load_actor
                    if cached is not None:
                        cached[1].close()
                    self._actors[key] = (stamp, load_actor(path, device=self.device, fine_tuned=fine_tuned))
                finally:
                    self._loading.discard(f"actor:{Path(path).name}")
            return self._actors[key][1]

    def face_model(self, name: str = "default"):
        with self._lock:
            if name not in self._face_models:
                self._loading.add(f"face_model:{name}")
                try:
                    from .facemodel import load_face_model
                    self._face_models[name] = load_face_model(name)
                except ImportError as e:
                    raise NotImplementedYet(f"the face model is not built yet ({e})") from None
                finally:
                    self._loading.discard(f"face_model:{name}")
            return self._face_models[name]

    def close(self) -> None:
        if self._generator is not None:
            self._generator.close()
        for _stamp, g in self._actors.values():
            g.close()


def track_image(rgb: np.ndarray, model: str = "default", progress: Progress = _quiet):
    try:
        from .tracker import track
    except ImportError as e:
        raise NotImplementedYet(f"the tracker is not built yet ({e})") from None
    return track(rgb, model=model, progress=progress)


def generate(models: Models, audio: Audio, settings: GenerateSettings,
             reference_rgb: np.ndarray | None = None, progress: Progress = _quiet,
             cancel: threading.Event | None = None, actor: str | Path | None = None,
             actor_fine_tuned: bool = False) -> list[Take]:
    """Audio + settings -> `settings.takes` Takes; a reference face transfers its emotion.
    actor: an actor profile folder (`flowvq actor learn`): its model, lead, mouth range and head
    motion; takes record its id in settings.actor. settings.actor without a profile is refused.
    actor_fine_tuned: the profile's fcg.pt even where its held-out selection chose the shipped model."""
    if actor is None and settings.actor:
        from .errors import BadRequest
        raise BadRequest(f"actor {settings.actor!r} is not loaded here: give its profile folder (--actor ACTOR_DIR)")
    generator = models.actor_generator(actor, actor_fine_tuned) if actor is not None else models.generator()
    reference = None
    if reference_rgb is not None:  # an image (H, W, 3), or a short clip's frames (T, H, W, 3): their mean
        progress(0.0, "reading the emotion reference")
        reference = track_image(reference_rgb).expression.mean(0)
    return generator.generate(audio.samples, settings, audio_sha256=audio.sha256,
                                       reference_expression=reference, progress=progress, cancel=cancel)
