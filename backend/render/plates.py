"""Plates: HD face image sequences from one portrait and a take's curves."""
from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BadImage, BadRequest, Cancelled
from ..files import write_json
from ..runtime import torch_threads
from .fit import PortraitFit, fit_portrait
from .warp import FaceWarper, WarpSettings

RENDERER_VERSION = "geometry-warp 1"


def _check_portrait(portrait) -> np.ndarray:
    a = np.asarray(portrait)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise BadImage(f"the portrait must be an RGB uint8 image (H, W, 3), got {a.shape} {a.dtype}")
    if min(a.shape[:2]) < 32:
        raise BadImage(f"the portrait is too small ({a.shape[1]} x {a.shape[0]})")
    return np.ascontiguousarray(a)


def portrait_sha256(portrait: np.ndarray) -> str:
    """Hash of the decoded pixels (and size), so re-encoding the same photo keeps the hash."""
    h = hashlib.sha256(f"{portrait.shape[1]}x{portrait.shape[0]}:".encode())
    h.update(np.ascontiguousarray(portrait).tobytes())
    return h.hexdigest()


class PlateRenderer:
    """Fits the portrait once; `render` yields (index, frame) at the portrait's resolution.

    Semantics (docs/plates.md): the take's pose is a delta added to the portrait's fitted pose
    (pose 0 = the portrait's own head pose); the take's expression is added to the portrait's
    fitted expression by default (WarpSettings.expression_mode="relative": an all-zero take
    renders the portrait unchanged), or replaces it ("absolute")."""

    def __init__(self, portrait, model="default", refine=None, device=None, fit: PortraitFit | None = None,
                 settings: WarpSettings = WarpSettings(), fidelity: float = 0.5, mouth_bank=None):
        import torch

        from ..facemodel import load_face_model

        self.portrait = _check_portrait(portrait)
        self.face_model = load_face_model(model) if isinstance(model, str) else model
        self.model_name = model if isinstance(model, str) else getattr(model, "name", "custom")
        self.fit = fit if fit is not None else fit_portrait(self.portrait, self.face_model)
        self.device = torch.device(device) if device else torch.device("cpu")
        self.warper = FaceWarper(self.portrait, self.face_model, self.fit, settings, self.device)
        self.refiner = None
        self.notes: list[str] = []
        self.mouth = None  # the actor's own lower face (render/mouth_bank.py) instead of the painted interior
        if mouth_bank is not None:
            from .bank_composite import Compositor
            from .mouth_bank import MouthBank

            self.mouth = Compositor(mouth_bank if isinstance(mouth_bank, MouthBank) else MouthBank.load(mouth_bank))
        if refine is not None:
            from .refine import Refiner

            if not Path(refine).is_file():
                self.notes.append(f"no VQIG checkpoint at {refine}: rendering the geometry path only")
            else:
                self.refiner = Refiner(refine, self.portrait, self.fit.landmarks, device=device, w=fidelity)

    @property
    def curve_semantics(self) -> str:
        mode = self.warper.settings.expression_mode
        return ("pose: the take's pose is added to the portrait's fitted pose; expression: the take's "
                + ("expression is added to the portrait's fitted expression" if mode == "relative"
                   else "expression replaces the portrait's fitted expression"))

    @property
    def versions(self) -> dict:
        return {"renderer": RENDERER_VERSION + (" + mouth bank" if self.mouth is not None else ""),
                "face_model": self.model_name,
                "vqig": None if self.refiner is None else self.refiner.checkpoint}

    def frame(self, expression: np.ndarray, pose: np.ndarray, i: int = 0, all_expression=None, all_pose=None):
        # tiny kernels on a CPU: thread hand-offs cost more than they give
        with torch_threads(1 if self.device.type == "cpu" else None):
            out = self.warper.frame(expression, pose)
        if self.refiner is not None:
            out = self.refiner(out, all_expression if all_expression is not None else expression[None],
                               all_pose if all_pose is not None else pose[None], i)
        return out

    def render(self, expression, pose, progress: Callable[[int, int], None] | None = None,
               cancel: threading.Event | None = None, skip=None):
        """Yield (i, frame (H,W,3) uint8) for every frame; `skip[i]` true leaves frame i out."""
        from flowvq_shared.takes import validate_curves

        expression = np.ascontiguousarray(expression, np.float32)
        pose = np.ascontiguousarray(pose, np.float32)
        validate_curves(expression, pose, 25.0)
        n = len(expression)
        lms = pick = None
        if self.mouth is not None:  # the whole take's mouths are chosen together (runs, few switches)
            from .bank_select import choose
            from .mouth_bank import shape_feature

            lms = np.stack([self.warper.target_landmarks(expression[i], pose[i]) for i in range(n)])
            pick = choose(np.stack([shape_feature(lm) for lm in lms]), self.mouth.bank.features,
                          self.mouth.bank.successor())
        for i in range(n):
            if cancel is not None and cancel.is_set():
                raise Cancelled("render cancelled")
            if skip is not None and skip[i]:
                continue
            frame = self.frame(expression[i], pose[i], i, expression, pose)
            if pick is not None:
                frame = self.mouth.frame(frame, lms[i], lms[i], int(pick[i]))
            if progress is not None:
                progress(i + 1, n)
            yield i, frame


def write_plates(take, portrait, out_dir, fmt: str = "png", mp4: bool = False, audio_path=None, resume: bool = False,
                 refine=None, progress=None, cancel=None, model="default", fit: PortraitFit | None = None,
                 device=None, fidelity: float = 0.5, mouth_bank=None) -> dict:
    """Render a take's plates into out_dir: frame_00001.<ext>..., plates.json, optional plates.mp4."""
    from flowvq_shared.takes import Take
    from . import writers

    if fmt not in writers.FORMATS:
        raise BadRequest(f"unknown plate format {fmt!r}; use one of {', '.join(writers.FORMATS)}")
    take_file = None
    if not isinstance(take, Take):
        take_file = str(Path(take))
        take = Take.load(take)
    if isinstance(portrait, (str, Path)):
        from ..images import load_image

        portrait = load_image(portrait).rgb
    portrait = _check_portrait(portrait)
    if audio_path is not None and not Path(audio_path).is_file():
        raise BadRequest(f"audio file not found: {audio_path}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    renderer = PlateRenderer(portrait, model=model, refine=refine, fit=fit, device=device, fidelity=fidelity,
                             mouth_bank=mouth_bank)
    n = take.n_frames
    done = writers.complete_frames(out, fmt, n) if resume else [False] * n
    h, w = portrait.shape[:2]
    manifest = {
        "format": fmt, "frames": n, "fps": take.fps, "width": w, "height": h,
        "take": {"file": take_file, "seed": take.seed, "emotion": take.emotion,
                 "intensity": take.settings.intensity, **take.provenance()},
        "portrait_sha256": portrait_sha256(portrait),
        "versions": renderer.versions,
        "curve_semantics": renderer.curve_semantics,
        "notes": list(renderer.notes),
        "complete": False,
    }
    _write_json(out / "plates.json", manifest)
    video = writers.Mp4Writer(out / "plates.mp4", w, h, take.fps, n, audio_path) if mp4 else None
    rendered = 0
    try:
        frames = renderer.render(take.expression, take.pose, cancel=cancel, skip=None if video else done)
        for i, frame in frames:
            if done[i]:
                frame = writers.read_frame(out / writers.frame_name(i, fmt))  # resume: keep what is on disk
            else:
                writers.write_frame(out, i, frame, fmt)
                rendered += 1
            if video is not None:
                video.add(frame)
            if progress is not None:
                progress(i + 1, n)
    except BaseException:
        if video is not None:
            video.abort()
        raise
    if video is not None:
        manifest["mp4"] = str(video.close())
    manifest.update(complete=True, rendered=rendered, resumed=n - rendered if resume else 0,
                    seconds=round(time.perf_counter() - t0, 3), out_dir=str(out))
    _write_json(out / "plates.json", manifest)
    return manifest


def _write_json(path: Path, obj: dict) -> None:
    write_json(path, obj, indent=2)
