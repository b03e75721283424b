"""`dub_shot`: a shot + a new line (audio, or a take / tracked curves) -> the shot with the new mouth.

Outputs in DIR: frame_00001.<ext>... (every frame of the shot, at its resolution: the dubbed ones
and the rest as filmed), dub.json (what was done, per frame: dubbed or as filmed and which bank
frame), and with mp4=True dub.mp4 carrying the new sound (a take: the shot's own sound)."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BadRequest, Cancelled, TooLarge
from ..files import sha256_file as _sha256, write_json as _write_json
from ..render.mouth_bank import BankBuilder, MouthBank, shape_feature
from ..tracker.fit import FitConfig
from ..tracker.follow import Shot, ShotLandmarks, find_landmarks, smooth_landmarks

DUB_VERSION = "bank-warp 1"
# The tracker's own fit: tracked curves (`flowvq track`) then want exactly the shot's mouth. A lighter
# fit (one identity round, 6 iterations) halved the fit's time but moved the mouth of a barely-parting
# speaker enough to drop (a)'s lip r on dfrf from 0.81 to 0.78.
DUB_FIT = FitConfig()
Progress = Callable[[float, str], None]


def _quiet(_f: float, _s: str) -> None:
    pass


def load_curves(path) -> tuple[np.ndarray, float, str]:
    """A take (take_K.npz) or tracked curves (`flowvq track` npz: expression (T,64) and fps)."""
    import zipfile

    from flowvq_shared.takes import Take

    from ..errors import readable_file

    path = readable_file(path, "take file", BadRequest)
    if not zipfile.is_zipfile(path):
        raise BadRequest(f"not a take or curves file: {path} (truncated, or not an .npz)")
    try:
        take = Take.load(path)
        return take.expression, float(take.fps), f"take {path.name} (seed {take.seed}, {take.emotion})"
    except Exception:  # noqa: BLE001 - not a take: try plain tracked curves below
        pass
    try:
        with np.load(path, allow_pickle=False) as z:
            expr = np.asarray(z["expression"], np.float32)
            fps = float(z["fps"]) if "fps" in z.files else 0.0
    except (KeyError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise BadRequest(f"{path.name}: neither a take nor tracked curves ({e})") from None
    if expr.ndim != 2 or expr.shape[1] != 64 or len(expr) == 0 or not np.isfinite(expr).all():
        raise BadRequest(f"{path.name}: expression must be (T, 64) finite numbers, got {expr.shape}")
    if not (math.isfinite(fps) and 1.0 <= fps <= 240.0):
        raise BadRequest(f"{path.name}: no usable fps in the file (got {fps})")
    return expr, fps, f"curves {path.name}"


def _track_file(shot_sha: str) -> Path:
    """Where a shot's landmarks and fit are cached: keyed by the shot's bytes, the tracker's source and
    the dub's fit settings, so a changed tracker or fit re-tracks."""
    import hashlib

    from ..tracker.cache import cache_root, tracker_fingerprint

    key = hashlib.sha256(f"{shot_sha} {tracker_fingerprint()} {DUB_FIT!r} {DUB_VERSION}".encode()).hexdigest()[:24]
    return cache_root() / "dub" / f"{key}.npz"


def _cached_track(shot_sha: str):
    from ..tracker.result import TrackResult

    path = _track_file(shot_sha)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            lms = ShotLandmarks(z["landmarks"], z["found"], z["score"], int(z["counted"]), int(z["several"]),
                                [str(n) for n in z["notes"]])
        return lms, TrackResult.load(path.with_suffix(".track.npz"))
    except (OSError, KeyError, ValueError, BadRequest):  # a damaged cache is re-made, never trusted
        return None


def _store_track(shot_sha: str, lms: ShotLandmarks, fit) -> None:
    import os

    path = _track_file(shot_sha)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}")
        fit.save(f"{tmp}.track.npz")
        os.replace(f"{tmp}.track.npz", path.with_suffix(".track.npz"))
        np.savez_compressed(f"{tmp}.npz", landmarks=lms.landmarks, found=lms.found, score=lms.score,
                            counted=lms.counted, several=lms.several, notes=np.array(lms.notes, dtype=np.str_))
        os.replace(f"{tmp}.npz", path)  # written last: its presence says both files are whole
    except OSError:  # a read-only or full cache costs speed, never the dub
        pass


def bank_for(actor, shot: Shot, lms: ShotLandmarks, log) -> tuple[MouthBank, str]:
    """The actor's mouth bank when the profile has one, else one built from the shot itself."""
    if actor is not None:
        from ..actor.profile import ActorProfile

        profile = ActorProfile.load(actor)
        if profile.mouth_bank is not None:
            return MouthBank.load(profile.mouth_bank), f"actor {profile.id}"
        log(f"note: {Path(actor).name} has no mouth bank (learned before dubbing existed, or with "
            f"--no-mouth-bank): using the shot's own frames; `flowvq actor bank` adds one")
    builder = BankBuilder()
    src = builder.add_source(shot.path.name)
    for i, rgb in enumerate(shot.frames_rgb()):
        if i < shot.frames and lms.found[i]:
            builder.add(src, i, rgb, lms.landmarks[i])
    return builder.build(), f"the shot itself ({shot.path.name})"


def dub_shot(video, out_dir, *, audio=None, take=None, actor=None, bank=None, settings=None, fmt: str = "png",
             mp4: bool = False, models=None, progress: Progress | None = None,
             cancel: threading.Event | None = None, on_frame=None, log=print) -> dict:
    """Dub `video` with `audio` (generated through the FCG, the actor's when given) or `take` (a take or
    tracked-curves file, or (expression, fps)). on_frame(i, rgb) sees every written frame."""
    from flowvq_shared.settings import FPS_RANGE, GenerateSettings

    from ..render import writers
    from ..tracker.track import fit_landmarks
    from ..facemodel import Camera, load_face_model
    from ..render.bank_composite import Compositor
    from ..render.bank_select import choose
    from .targets import line_weight, resample, wanted_landmarks

    report = progress or _quiet
    if fmt not in writers.FORMATS:
        raise BadRequest(f"unknown frame format {fmt!r}; use one of {', '.join(writers.FORMATS)}")
    if (audio is None) == (take is None):
        raise BadRequest("give the new line as audio or as a take (one of them)")
    if actor is not None:
        from ..actor.profile import ActorProfile

        ActorProfile.load(actor)  # strict: a broken profile is refused before any work
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BadRequest(f"output {out} is a file, not a folder")
    t0 = time.perf_counter()
    still = Path(video).suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr")
    shot = None if still else Shot.open(video)
    if still or shot.frames < 2:
        raise BadRequest(f"{Path(video).name} is a still image, not a filmed shot; a portrait's plates "
                         "come from `flowvq render --portrait`")
    new_audio = None
    if audio is not None:
        from ..audio import load_audio

        new_audio = load_audio(audio) if not hasattr(audio, "samples") else audio
        _check_length(new_audio.duration, shot)
    else:
        if isinstance(take, tuple):
            expr_in, fps_in, label = np.asarray(take[0], np.float32), float(take[1]), "curves"
        else:
            expr_in, fps_in, label = load_curves(take)
        _check_length(len(expr_in) / fps_in, shot)

    out.mkdir(parents=True, exist_ok=True)
    shot_sha = _sha256(shot.path)
    model = load_face_model("default")
    camera = Camera.for_image(shot.width, shot.height)
    cached = _cached_track(shot_sha)
    if cached is not None:  # this shot was tracked before (another line, another take): the fit is the same
        lms, fit = cached
        log("track: read from the cache (this shot was dubbed before)")
    else:
        report(0.0, "finding the face")
        lms = find_landmarks(shot, lambda f, s: report(0.3 * f, s), cancel)
        report(0.3, "fitting the face")
        fit = fit_landmarks(lms.landmarks, lms.found, lms.score, camera, model, shot.fps, config=DUB_FIT)
        _store_track(shot_sha, lms, fit)
    for note in lms.notes:
        log(f"note: {note}")
    smooth = smooth_landmarks(lms.landmarks, lms.found)
    if new_audio is not None:
        report(0.4, "generating the mouth")
        from .. import jobs

        s = settings or GenerateSettings()
        s = replace(s, takes=1, fps=float(np.clip(shot.fps, *FPS_RANGE)))
        models = models or jobs.Models()
        # the fine-tuned model's mouth shapes are the person's, and the bank is looked up by shape: on the
        # dfrf 40/20 shot identity max 0.398 -> 0.302, mouth SSIM 0.71 -> 0.88 (docs/evaluation_dub.md)
        line = jobs.generate(models, new_audio, s, actor=actor, actor_fine_tuned=True)[0]
        expr_in, fps_in = line.expression, float(line.fps)
        label = f"audio {getattr(new_audio, 'sha256', '')[:12]} -> take 1 (seed {s.seed}, {s.emotion})"
    report(0.5, "choosing mouths")
    new_expr, inside = resample(expr_in, fps_in, shot.frames, shot.fps)
    weight = line_weight(inside, shot.fps) * lms.found
    want = wanted_landmarks(model, fit.identity, camera, fit.expression, fit.pose, smooth, new_expr, weight)
    if bank is None:
        bank, bank_label = bank_for(actor, shot, lms, log)
    else:
        bank_label = str(bank) if isinstance(bank, (str, Path)) else "given"
        bank = MouthBank.load(bank) if isinstance(bank, (str, Path)) else bank
    active = weight > 0
    feats = np.zeros((shot.frames, bank.features.shape[1]), np.float32)
    for i in np.nonzero(active)[0]:
        feats[i] = shape_feature(want[i])
    pick = choose(feats, bank.features, bank.successor(), valid=active)
    comp = Compositor(bank)

    manifest = {
        "kind": "flowvq-dub", "format": fmt, "frames": shot.frames, "fps": shot.fps, "width": shot.width,
        "height": shot.height, "shot": {"file": str(shot.path), "sha256": shot_sha},
        "line": label, "line_frames": int(inside.sum()), "actor": None if actor is None else str(actor),
        "bank": {"from": bank_label, "frames": len(bank)}, "versions": {"dub": DUB_VERSION},
        "notes": list(lms.notes), "complete": False,
    }
    _write_json(out / "dub.json", manifest)
    sound = None
    if mp4:
        sound = Path(audio) if new_audio is not None and isinstance(audio, (str, Path)) else None
        if sound is None and new_audio is not None:
            sound = _write_wav(out / ".dub_sound.wav", new_audio.samples)
        if sound is None and shot.has_audio:
            sound = shot.path
    video = writers.Mp4Writer(out / "dub.mp4", shot.width, shot.height, shot.fps, shot.frames, sound) if mp4 else None
    per_frame = []
    t_synth = 0.0
    try:
        for i, rgb in enumerate(shot.frames_rgb()):
            if i >= shot.frames:
                break
            if cancel is not None and cancel.is_set():
                raise Cancelled("dub cancelled")
            if active[i] and pick[i] >= 0:
                ts = time.perf_counter()
                rgb = comp.frame(rgb, smooth[i], want[i], int(pick[i]), strength=float(weight[i]))
                t_synth += time.perf_counter() - ts
                per_frame.append(int(pick[i]))
            else:
                per_frame.append(-1)
            writers.write_frame(out, i, rgb, fmt)
            if video is not None:
                video.add(rgb)
            if on_frame is not None:
                on_frame(i, rgb)
            report(0.5 + 0.5 * (i + 1) / shot.frames, "dubbing")
    except BaseException:
        if video is not None:
            video.abort()
        raise
    if video is not None:
        manifest["mp4"] = str(video.close())
        manifest["mp4_sound"] = None if sound is None else ("the new line" if new_audio is not None else "the shot's own")
    (out / ".dub_sound.wav").unlink(missing_ok=True)
    dubbed = int(sum(p >= 0 for p in per_frame))
    manifest.update(complete=True, dubbed_frames=dubbed, bank_frame=per_frame,
                    seconds=round(time.perf_counter() - t0, 3),
                    synthesis_fps=round(dubbed / t_synth, 2) if t_synth > 0 else None, out_dir=str(out))
    _write_json(out / "dub.json", manifest)
    return manifest


def _check_length(seconds: float, shot: Shot) -> None:
    # a shot's own sound often runs a few ms past its last frame (AAC priming and padding): a frame or
    # 0.1 s of slack, and what is past the shot is not dubbed
    if seconds > shot.duration + max(1.0 / shot.fps, 0.1):
        raise TooLarge(f"the new line is {seconds:.2f} s but the shot is {shot.duration:.2f} s "
                       f"({shot.frames} frames at {shot.fps:.3f} fps): a dub cannot run past its shot")


def _write_wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    import wave

    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


