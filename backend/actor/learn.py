"""`flowvq actor learn`: minutes of one person's footage -> an actor profile folder.

Stages (each skipped when its output exists, so an interrupted run resumes; every file is
written atomically, so Ctrl-C never leaves a half file that a later run would trust):

  check     each video: sha256, sound (none / silent refused), usable seconds (< MIN_SECONDS refused)
  track     the project's tracker (dlib + face-model fit) -> work/track_K.npz, face crops for the bank
            (no face, or two faces in many frames, refused)
  dataset   the dataset builder's writer: train items (the head of the footage) and held-out items
            (the tail, `holdout` of it), work/train, work/holdout
  finetune  ExpFlow + PoseFlow from the shipped checkpoint: few steps, low learning rate, an L2 pull
            towards the default weights (the default model's prior kept), early stopping on the
            held-out NLL -> fcg.pt (float16)
  estimate  lead of lips over sound, mouth range per channel, typical head motion per axis (median
            of 4 s window stds; each against what the fine-tuned generator makes on the same audio;
            the head's ratio shrunk toward 1 with little footage), neutral face, identity
  voice     their voice map (generate/voicemap.py): their sound + the phones heard in it -> their
            lip gap; from the training part (judged) and from all of it (shipped: voice_map.npz)
  select    1. the voice map's weight, out of fold on all the footage (0: the default product);
            2. on the held-out tail: with a weight, the default or the fine-tuned model with the map;
            without, the corrections (the default model; the fine-tuned one alone, + lead shift,
            + mouth scale (full, or shrunk toward 1), + both) by held-out lip-sync r; the best one
            is `estimated.selected` (held-out part under SELECT_MIN_S: the default model with the
            map, or, with no weight, everything applied as before, and said so)
  fit       held-out lip-sync r and typical-motion pose ratio, profile vs the default model
  bank      a few of their own frames (face crops, PNG) + their tracked curves -> bank/
  actor.json written last
"""
from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from flowvq_shared.settings import ACTOR_LEARN_STAGES

from ..errors import BadAudio, BadRequest, NoFace
from ..files import sha256_file as _sha256, write_json as _write_json
from .profile import FORMAT, KIND, MOUTH_CHANNELS, MOUTH_INDEX, POSE_SCALE_RANGE, SCALE_RANGE, \
    MAX_SHIFT_S, ActorProfile, safe_id
from ..generate.voicemap import MAX_SYNC_S, VoiceMap, heard

MIN_SECONDS = 8.0
SYNC_MAX_LAG = 8  # frames searched either side for a recording's sync (sync_offset)
SAMPLE_RATE = 16000
MAX_MULTI_FACE = 0.25  # share of frames with a second face that refuses the footage
MIN_FACE = 0.5  # share of frames with a face needed
# Head motion (docs/actor.md, "Head motion"): the typical motion of an axis is the median, over
# windows of POSE_WINDOW_S (half-overlapping, each mean-removed), of the window's std: a few big
# turns inflate one std over a long span, not the median. The same windows for the real track and
# for the generated takes on the same audio.
POSE_WINDOW_S = 4.0
# The measured ratio real / generated is shrunk toward 1 (the default model's prior) with little
# footage: scale = ratio ** w, w = T / (T + POSE_PRIOR_S), T the seconds it was measured over.
# In log space this is the posterior mean of a ratio with prior spread tau and a measurement whose
# variance falls as 1/T; POSE_PRIOR_S = (per-second variance of the measured log ratio) / tau^2.
# From the tracked clips (dfrf, obama): 4 s window stds spread by sd(log) ~0.5 (real) and ~0.3
# (generated), x1.6 for a median, ~3.5 s of independent footage per window -> ~2.2 s / T; tau^2 ~0.1
# (actor vs fine-tuned generator, after that noise) -> ~22 s. So 20 s: 20 s of footage is trusted halfway.
POSE_PRIOR_S = 20.0
POSE_TAKES = 3  # generated takes pooled for the head-motion estimate (a batch: about the cost of one)
# Selection (docs/actor.md, "Held-out selection"): the lead shift and the mouth scales are measured on
# ~20-40 s of footage and can hurt (Obama_clip2: held-out r 0.29 -> 0.15). Each candidate is scored by
# the held-out lip-sync r (fit's measure, SELECT_TAKES takes averaged); the best wins, ties going to the
# earlier (simpler) one. A held-out part under SELECT_MIN_S is too noisy to judge: everything is applied.
SELECT_MIN_S = 4.0
SELECT_TAKES = 2
MOUTH_PRIOR_S = 20.0  # the shrunk mouth-scale candidate: scale ** w, w = T / (T + MOUTH_PRIOR_S), as the head's
CANDIDATES = (  # name, model, lead shift, mouth-scale power ("w": the shrinkage weight); order breaks ties
    ("default", "default", False, 0.0),
    ("fine-tuned", "actor", False, 0.0),
    ("fine-tuned + lead", "actor", True, 0.0),
    ("fine-tuned + mouth (shrunk)", "actor", False, "w"),
    ("fine-tuned + lead + mouth (shrunk)", "actor", True, "w"),
    ("fine-tuned + mouth", "actor", False, 1.0),
    ("fine-tuned + lead + mouth", "actor", True, 1.0),
)
# the voice map (voicemap.py) carries their lead and their opening: with it, no lead shift or mouth scale
VOICE_WEIGHTS = (0.0, 0.35, 0.7, 1.0)
UNJUDGED = "fine-tuned + lead + mouth"  # a tail too short to judge: what every profile did before the selection
VOICE_TRAIN = "work/voice_train.npz"  # the map from the training part only: what the held-out stages judge
VOICE_MAP = "voice_map.npz"  # the map the profile ships: all the footage

# The fine-tune's steps scale down under FULL_STEPS_S of footage: its 200 steps cost ~100 s whatever the
# footage, which put a 10 s clip at 21 min of learning per minute of footage (the issue allows ~15), and a
# short clip needs fewer steps, not more epochs of the same frames (docs/actor.md, "Cost").
FULL_STEPS_S = 25.0


def fine_tune_steps(steps: int, footage_s: float) -> int:
    """The most steps the fine-tune runs: `steps` from FULL_STEPS_S of footage on, proportionally fewer below."""
    return max(1, min(int(steps), round(int(steps) * footage_s / FULL_STEPS_S)))


def _save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _video_info(path: Path) -> tuple[float, int]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise BadRequest(f"{path.name}: cannot open the video")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    if not fps > 0 or n <= 1:
        raise BadRequest(f"{path.name}: not a video (no frame rate or a single frame)")
    return fps, n


def check_sources(videos, max_seconds: float | None, min_seconds: float = MIN_SECONDS) -> list[dict]:
    """Fast refusals before the slow part: missing file, no sound, silent sound, too short."""
    from ..audio import load_audio

    paths = [Path(v) for v in videos]
    if not paths:
        raise BadRequest("no videos given")
    out = []
    for p in paths:
        if not p.is_file():
            raise BadRequest(f"video not found: {p}")
        fps, n = _video_info(p)
        sidecar = p.with_suffix(".wav")
        try:
            audio = load_audio(sidecar if sidecar.is_file() else p, max_seconds=4 * 3600)
        except BadAudio as e:
            raise BadAudio(f"{p.name}: no usable sound ({e.message})") from None
        seconds = min(n / fps, audio.duration, max_seconds or math.inf)
        out.append({"path": str(p.absolute()), "file": p.name, "sha256": _sha256(p), "fps": fps,
                    "frames": int(math.floor(seconds * fps + 1e-6)), "seconds": round(seconds, 3),
                    "audio": "sidecar wav" if sidecar.is_file() else "sound track"})
    total = sum(s["seconds"] for s in out)
    if total < min_seconds:
        raise BadRequest(f"too short: {total:.1f} s of footage; an actor needs at least {min_seconds:g} s "
                         "(a minute or more is better)")
    return out


def _audio(src: dict) -> np.ndarray:
    from ..audio import load_audio

    p = Path(src["path"])
    sidecar = p.with_suffix(".wav")
    a = load_audio(sidecar if sidecar.is_file() else p, max_seconds=4 * 3600).samples
    return a[: int(round(src["seconds"] * SAMPLE_RATE))]


def _crop(frame: np.ndarray, lm: np.ndarray, size: int = 128) -> np.ndarray:
    import cv2

    lo, hi = np.nanmin(lm, 0), np.nanmax(lm, 0)
    c = (lo + hi) / 2
    half = 0.8 * float(max(hi - lo))
    h, w = frame.shape[:2]
    x0, y0 = int(max(0, c[0] - half)), int(max(0, c[1] - half))
    x1, y1 = int(min(w, c[0] + half)), int(min(h, c[1] + half))
    return cv2.resize(frame[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)


def track_source(src: dict, out_npz: Path, crops_npz: Path, bank_size: int, bar=None, on_progress=None):
    """The tracker on one video (landmarks, then the fit), refusing no face / two faces.
    on_progress(fraction, stage): within this video; it may raise Cancelled (nothing is written then)."""
    from ..tracker.frames import check_size, iter_video
    from ..tracker.track import detect_all, fit_landmarks
    from ..facemodel import Camera

    path, fps, notes, size = Path(src["path"]), src["fps"], [], []

    def frames():  # one at a time: minutes of 1080p footage would be tens of GB held as a list
        for rgb in iter_video(path, src["frames"]):
            rgb = check_size(rgb, notes)
            size[:] = [rgb.shape[1], rgb.shape[0]]
            yield rgb

    def report(f, stage):
        if bar is not None:
            bar.set_postfix_str(f"{src['file']}: {stage} {100 * f:.0f}%")
        if on_progress is not None:
            on_progress(f, f"tracking {src['file']}: {stage}")

    landmarks, found, score, several = detect_all(frames(), report, total=src["frames"])
    t = len(landmarks)
    if t == 0:
        raise NoFace(f"{src['file']}: no frame could be read")
    if not found.any():
        raise NoFace(f"{src['file']}: no face found in any of {t} frames")
    if found.mean() < MIN_FACE:
        raise NoFace(f"{src['file']}: a face is in only {100 * found.mean():.0f}% of the frames; "
                     f"an actor needs one face in view most of the time")
    if several > MAX_MULTI_FACE * t:
        raise BadRequest(f"{src['file']}: two or more faces in {several} of {t} frames; an actor is "
                         "learned from footage of one person")
    w, h = size
    res = fit_landmarks(landmarks, found, score, Camera.for_image(w, h), "default", fps, notes=sorted(set(notes)),
                        report=report)
    pick = np.flatnonzero(found)
    pick = pick[np.linspace(0, len(pick) - 1, min(bank_size, len(pick))).round().astype(int)]
    wanted = set(pick.tolist())
    crops = np.stack([_crop(check_size(rgb, []), landmarks[i]) for i, rgb in enumerate(iter_video(path, int(pick[-1]) + 1))
                      if i in wanted])  # the bank's frames, read again: a second pass costs less than keeping them all
    _save_npz(crops_npz, crops=crops, frames=pick)
    tmp = out_npz.with_name(out_npz.stem + ".tmp.npz")
    res.save(tmp)
    os.replace(tmp, out_npz)
    return res


def split_segments(sources: list[dict], tracks: list, holdout: float, min_seconds: float = 2.0) -> dict:
    """Face runs of every video, cut at (1 - holdout) of the total footage: head -> train, tail -> held out."""
    from ..training.dataset import face_runs

    total = sum(s["frames"] / s["fps"] for s in sources)
    cut = (1.0 - holdout) * total
    segs = {"train": [], "holdout": []}
    offset = 0.0
    for k, (src, res) in enumerate(zip(sources, tracks)):
        fps = src["fps"]
        n = min(src["frames"], len(res.face_found))
        cut_frame = int(round((cut - offset) * fps))
        for a, b in face_runs(res.face_found[:n], int(math.ceil(min_seconds * fps))):
            for part, (x, y) in (("train", (a, min(b, cut_frame))), ("holdout", (max(a, cut_frame), b))):
                if y - x >= min_seconds * fps:
                    segs[part].append({"video": k, "start": int(x), "stop": int(y)})
        offset += n / fps
    if not segs["train"]:
        raise BadRequest("too short: no stretch of at least 2 s with a face before the held-out tail")
    return segs


def write_datasets(work: Path, sources, tracks, audios, segs) -> None:
    from ..training.dataset import DatasetWriter

    from ..fcg.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint

    m, _, _ = load_checkpoint(DEFAULT_CHECKPOINT)  # the default's training range: channels the corpus
    lo, hi = m.exp_lo.numpy(), m.exp_hi.numpy()    # never moved would cost the flow thousands of nats
    for part in ("train", "holdout"):
        if (work / part / "dataset.json").exists() or not segs[part]:
            continue
        with DatasetWriter(work / part, fps=25.0, overwrite=True,
                           meta={"generator": "flowvq actor learn", "part": part}) as w:
            for j, s in enumerate(segs[part]):
                src, res, audio = sources[s["video"]], tracks[s["video"]], audios[s["video"]]
                fps = src["fps"]
                a, b = s["start"], s["stop"]
                s0, s1 = int(round(a / fps * SAMPLE_RATE)), int(round(b / fps * SAMPLE_RATE))
                pose = res.pose[a:b] - res.pose[a:b].mean(0)  # head rotation about its mean; translation
                pose[:, 3:] = 0.0  # zero: the corpus's heads do not translate, and the tracker's camera-space
                # offsets (tz ~ -67 units, std 0.2-0.4) cost PoseFlow thousands of nats per frame
                w.add(f"{part}_{j:03d}", audio[s0:s1], SAMPLE_RATE, np.clip(res.expression[a:b], lo, hi), pose,
                      "talking", speaker="actor", source=f"video:{src['file']}", fps=fps)


# ---- fine-tuning ------------------------------------------------------------------------------

def finetune(train_dir: Path, holdout_dir: Path | None, out: Path, steps: int, lr: float, batch: int,
             l2: float, eval_every: int, patience: int, seed: int = 0, progress: bool = True) -> dict:
    """ExpFlow + PoseFlow from the shipped weights; early stopping on the held-out NLL."""
    from ..runtime import torch_threads

    with torch_threads(1):  # tiny ops: one thread is fastest on a shared CPU
        return _finetune(train_dir, holdout_dir, out, steps, lr, batch, l2, eval_every, patience, seed, progress)


def _finetune(train_dir, holdout_dir, out, steps, lr, batch, l2, eval_every, patience, seed, progress) -> dict:
    import torch

    from ..fcg.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint
    from ..training.fcg import FrameBank, TrainConfig, load_items, store_latents

    torch.manual_seed(seed)
    model, meta0, _ = load_checkpoint(DEFAULT_CHECKPOINT)
    cfg = model.cfg
    items, _ = load_items(train_dir)
    bank = FrameBank(items, cfg)
    hold = FrameBank(load_items(holdout_dir)[0], cfg) if holdout_dir is not None else None
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the clamp covers both the default's range and the actor's
        model.exp_lo.copy_(torch.minimum(model.exp_lo, bank.exp[bank.rows].min(0).values))
        model.exp_hi.copy_(torch.maximum(model.exp_hi, bank.exp[bank.rows].max(0).values))
    ref = {n: p.detach().clone() for n, p in model.named_parameters()}
    eval_rows = None
    if hold is not None:
        pick = torch.randperm(hold.rows.shape[0], generator=torch.Generator().manual_seed(1))[:768]
        eval_rows = hold.rows[pick]

    def held_nll() -> float:
        if hold is None:
            return float("nan")
        model.eval()
        with torch.no_grad():
            d = model.loss(hold.batch(eval_rows))
        model.train()
        return float(d["nll_exp"] + d["nll_pose"])

    tc = TrainConfig(steps=steps, batch=batch, lr=lr, consistency_rows=8, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    history = [{"step": 0, "holdout_nll": round(held_nll(), 4)}]
    best = (history[0]["holdout_nll"], 0, copy.deepcopy(model.state_dict()))
    bad = 0
    t0 = time.time()
    from tqdm import tqdm

    bar = tqdm(range(steps), desc="fine-tune", unit="step", disable=not progress, dynamic_ncols=True, leave=False)
    stopped = steps
    run = None
    for step in bar:
        for grp in opt.param_groups:  # short warm-up, then constant: few steps, low rate
            grp["lr"] = lr * min(1.0, (step + 1) / 20)
        rows = bank.sample_rows(batch, tc.consistency_rows, g)
        d = model.loss(bank.batch(rows, g, tc), n_consistency=tc.consistency_rows)
        reg = sum(((p - ref[n]) ** 2).sum() for n, p in model.named_parameters())
        loss = d["loss"] + l2 * reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        v = float((d["nll_exp"] + d["nll_pose"]).detach())
        run = v if run is None else 0.95 * run + 0.05 * v
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            h = held_nll()
            history.append({"step": step + 1, "train_nll": round(run, 4), "holdout_nll": round(h, 4),
                            "elapsed_s": round(time.time() - t0, 1)})
            bar.set_postfix(train=f"{run:.3f}", held=f"{h:.3f}")
            if hold is None or h < best[0] - 1e-4:
                best, bad = (h, step + 1, copy.deepcopy(model.state_dict())), 0
            else:
                bad += 1
                if bad >= patience:
                    stopped = step + 1
                    break
    bar.close()
    model.load_state_dict(best[2])
    model.eval()
    store_latents(model, bank, tc, g)
    meta = {k: v for k, v in meta0.items() if k != "history"}
    meta.update(trained_on=f"{meta0.get('trained_on')} -> actor fine-tune ({bank.duration:.0f} s)",
                actor_finetune={"steps_run": stopped, "best_step": best[1], "lr": lr, "batch": batch,
                                "l2_to_default": l2, "history": history,
                                "seconds": round(time.time() - t0, 1)})
    save_checkpoint(out, model, meta, train_state=None, half=True)
    return meta["actor_finetune"]


# ---- estimates --------------------------------------------------------------------------------

def _lead_frames(curves: list[tuple], fps: float, max_lag: int = 8) -> int:
    """Frames at `fps` the mouth curve runs ahead of another (the loudness; a voice map's course),
    from the summed correlation profile over clips; curves: (mouth, other, their fps): footage at
    another rate is resampled to `fps` first (a frame of lag is then the same time in every clip)."""
    from ..evaluate.lipsync import lag_profile

    total = {}
    for mouth, loud, rate in curves:
        if abs(rate - fps) > 1e-6:
            mouth, loud = _resample(mouth, rate, fps), _resample(loud, rate, fps)
        if len(mouth) < 4 * max_lag or np.std(mouth) < 1e-9 or np.std(loud) < 1e-9:
            continue
        for lag, r in lag_profile(mouth, loud, max_lag).items():
            total[lag] = total.get(lag, 0.0) + len(mouth) * (r if np.isfinite(r) else 0.0)
    if not total:
        return 0
    return -max(total, key=total.get)  # lag < 0: the mouth is early, i.e. it leads


def _resample(curve: np.ndarray, fps: float, to_fps: float) -> np.ndarray:
    """A per-frame curve at `fps` -> the same seconds at `to_fps` (linear)."""
    curve = np.asarray(curve, np.float64)
    n = max(1, int(round(len(curve) / fps * to_fps)))
    return np.interp(np.arange(n) / to_fps, np.arange(len(curve)) / fps, curve)


def _generate_plain(gen, audio: np.ndarray, fps: float, seed: int = 0, takes: int = 1):
    """Take 1's expression and pose, and the pose of every take (take 1 is the same for any `takes`)."""
    from flowvq_shared.settings import GenerateSettings

    ts = gen.generate(audio, GenerateSettings(fps=fps, takes=takes, seed=seed))
    return ts[0].expression, ts[0].pose, [t.pose for t in ts]


def motion_windows(pose: np.ndarray, fps: float, window_s: float = POSE_WINDOW_S) -> np.ndarray:
    """(windows, axes): the std of each axis in each window of `window_s` (half-overlapping, spread
    evenly over the track, each window mean-removed); a track shorter than a window is one window."""
    pose = np.asarray(pose, np.float64)
    if pose.ndim == 1:
        pose = pose[:, None]
    n, w = len(pose), max(2, int(round(window_s * fps)))
    if n < 2:
        return np.zeros((0, pose.shape[1]))
    if n <= w:
        return pose.std(0)[None]
    k = int(math.ceil((n - w) / (w / 2))) + 1
    starts = np.linspace(0, n - w, k).round().astype(int)
    return np.stack([pose[a:a + w].std(0) for a in starts])


def typical_motion(tracks, fps, window_s: float = POSE_WINDOW_S) -> np.ndarray:
    """Per axis: the median over the windows of all `tracks` of the window's std (motion_windows);
    `fps`: one rate, or one per track (footage at several rates: every window is `window_s` long)."""
    rates = np.broadcast_to(np.asarray(fps, np.float64), (len(tracks),))
    wins = [motion_windows(t, f, window_s) for t, f in zip(tracks, rates)]
    wins = [x for x in wins if len(x)]
    if not wins:
        raise ValueError("no track of two frames or more")
    return np.median(np.concatenate(wins), axis=0)


def shrunk_pose_scale(real: np.ndarray, generated: np.ndarray, seconds: float,
                      prior_s: float = POSE_PRIOR_S) -> tuple[np.ndarray, float, np.ndarray]:
    """real / generated typical motion per axis -> (raw ratio, weight w, applied scale = clip(ratio ** w)),
    w = seconds / (seconds + prior_s): little footage keeps the generator's own motion."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    raw = np.where(generated > 1e-6, real / np.maximum(generated, 1e-6), 1.0)
    raw = np.where(real > 1e-6, raw, 1.0)  # an axis that never moved (or was not tracked) is no evidence
    w = float(seconds) / (float(seconds) + prior_s) if seconds > 0 else 0.0
    return raw, w, np.clip(raw ** w, *POSE_SCALE_RANGE)


def pose_ratio(generated, real, fps) -> tuple[float, list[float]]:
    """Generated vs real head motion: typical_motion per rotation axis, ratio per axis and its mean
    (the figure the fit and python -m flowvq.actor.measure report); `fps`: one rate, or one per track
    (the same for both lists: generated[i] is made for real[i])."""
    g = typical_motion([np.asarray(p)[:, :3] for p in generated], fps)
    r = typical_motion([np.asarray(p)[:, :3] for p in real], fps)
    per = g / np.maximum(r, 1e-6)
    return float(np.mean(per)), [round(float(x), 4) for x in per]


def estimate(sources, tracks, audios, segs, ckpt: Path, max_calib_s: float = 120.0) -> dict:
    from ..evaluate.lipsync import loudness_curve
    from ..evaluate.mouth import fill_nan, lip_gap, mouth_opening
    from ..generate import load_generator

    real_lead, gen_lead, real_mouth, real_pose, gen_mouth, gen_pose, quiet = [], [], [], [], [], [], []
    real_motion, gen_motion = [], []  # rotation over the calibrated frames: real, and every generated take
    real_fps, gen_fps = [], []  # each of those tracks' frame rate (footage may mix rates)
    base_motion = []  # the shipped model's takes on the same audio: its head scale, if select chooses it
    gen = load_generator(ckpt, device="cpu")
    base = load_generator(None, device="cpu", voice=False, recogniser=gen.recogniser)  # each line heard once
    calib = 0.0
    try:
        for fps, a, b, res, clip in _spans(segs["train"], sources, tracks, audios):
            n = b - a
            loud = loudness_curve(clip, fps, n)
            real_lead.append((fill_nan(lip_gap(res.landmarks[a:b])), loud, fps))
            real_mouth.append(res.expression[a:b][:, MOUTH_INDEX])
            pose = res.pose[a:b]
            real_pose.append(pose - pose.mean(0))
            quiet.append(res.expression[a:b][loud <= np.quantile(loud, 0.2)])
            if calib < max_calib_s:  # what the fine-tuned generator makes on the same audio
                heard_clip = clip[: int(min(n / fps, max_calib_s - calib) * SAMPLE_RATE)]
                e, p, takes = _generate_plain(gen, heard_clip, fps, takes=POSE_TAKES)
                base_motion += [t[:min(len(t), n), :3] for t in _generate_plain(base, heard_clip, fps, takes=POSE_TAKES)[2]]
                gen_lead.append((mouth_opening(e), loud[: len(e)], fps))
                gen_mouth.append(e[:, MOUTH_INDEX])
                gen_pose.append(p - p.mean(0))
                m = min(len(e), n)
                real_motion.append(pose[:m, :3])
                gen_motion += [t[:m, :3] for t in takes]
                real_fps.append(fps)
                gen_fps += [fps] * len(takes)
                calib += m / fps
    finally:
        base.close()
        gen.close()  # and the recogniser base shares
    fps0 = sources[0]["fps"]
    lead_real, lead_gen = _lead_frames(real_lead, fps0), _lead_frames(gen_lead, fps0)
    shift_s = float(np.clip((lead_real - lead_gen) / fps0, -MAX_SHIFT_S, MAX_SHIFT_S))
    rm, gm = np.concatenate(real_mouth), np.concatenate(gen_mouth)
    r_lo, r_c, r_hi = np.percentile(rm, [5, 50, 95], axis=0)
    g_lo, g_c, g_hi = np.percentile(gm, [5, 50, 95], axis=0)
    g_span = g_hi - g_lo
    scale = np.where(g_span > 1e-3, (r_hi - r_lo) / np.maximum(g_span, 1e-3), 1.0)
    rp, gp = np.concatenate(real_pose), np.concatenate(gen_pose)
    # head motion: typical (windowed median) motion, real vs generated on the same frames, shrunk toward 1
    real_typ, gen_typ = typical_motion(real_motion, real_fps), typical_motion(gen_motion, gen_fps)
    raw, w, rot_scale = shrunk_pose_scale(real_typ, gen_typ, calib)
    pose_scale = np.ones(rp.shape[1])
    pose_scale[:3] = rot_scale  # translation: not learned (see write_datasets), left as generated
    # the shipped model moves its head differently from the fine-tuned one: its own scale, for when select chooses it
    base_typ = typical_motion(base_motion, gen_fps)
    raw_base, _, base_scale = shrunk_pose_scale(real_typ, base_typ, calib)
    pose_scale_default = np.ones(rp.shape[1])
    pose_scale_default[:3] = base_scale

    def log_sd(tracks, rates):  # how much the window stds wander (the noise POSE_PRIOR_S is set against)
        x = np.concatenate([motion_windows(t, f) for t, f in zip(tracks, rates)])
        return np.log(np.maximum(x, 1e-6)).std(0).round(3).tolist()

    neutral = np.median(np.concatenate(quiet), axis=0)
    return {
        "lead_s": round(lead_real / fps0, 4), "generated_lead_s": round(lead_gen / fps0, 4),
        "lead_shift_s": round(shift_s, 4),
        "mouth_channels": list(MOUTH_CHANNELS),
        "mouth_scale": np.clip(scale, *SCALE_RANGE).round(4).tolist(),
        "mouth_scale_unclipped": scale.round(4).tolist(),
        "mouth_p5": r_lo.round(4).tolist(), "mouth_centre": r_c.round(4).tolist(), "mouth_p95": r_hi.round(4).tolist(),
        "generated_mouth_centre": g_c.round(4).tolist(),
        "pose_std": rp.std(0).round(5).tolist(), "generated_pose_std": gp.std(0).round(5).tolist(),
        "pose_motion": real_typ.round(5).tolist(), "generated_pose_motion": gen_typ.round(5).tolist(),
        "pose_ratio_raw": raw.round(4).tolist(), "pose_scale_weight": round(w, 4),
        "pose_scale": pose_scale.round(4).tolist(),
        "generated_pose_motion_default": base_typ.round(5).tolist(), "pose_ratio_raw_default": raw_base.round(4).tolist(),
        "pose_scale_default": pose_scale_default.round(4).tolist(),
        "pose_window_log_sd": {"real": log_sd(real_motion, real_fps), "generated": log_sd(gen_motion, gen_fps)},
        "pose_how": (f"pitch/yaw/roll: pose_motion = median over {POSE_WINDOW_S:g} s windows (half-overlapping, "
                     f"mean-removed) of the window std, real track vs {POSE_TAKES} generated takes on the same "
                     f"{calib:.1f} s (the fine-tuned model; _default: the shipped one, used when select chooses it); "
                     f"pose_scale = ratio ** w, w = T / (T + {POSE_PRIOR_S:g} s), clipped "
                     f"{POSE_SCALE_RANGE[0]:g}-{POSE_SCALE_RANGE[1]:g}; pose_std / generated_pose_std: plain std "
                     "over all of it, for reference"),
        "pose_seconds": round(calib, 1), "pose_window_s": POSE_WINDOW_S, "pose_prior_s": POSE_PRIOR_S,
        "neutral_expression": neutral.round(4).tolist(),
        "calibration_seconds": round(calib, 1),
    }


def voice_pairs(part, sources, tracks, audios, recogniser) -> list[tuple]:
    """A part's segments as the voice map reads them: (their sound, fps, tracked lip gap with NaN
    where no face, the phones heard in the sound or None)."""
    from ..evaluate.mouth import lip_gap

    pairs = []
    for fps, a, b, tr, clip in _spans(part, sources, tracks, audios):
        gap = lip_gap(tr.landmarks[a:b])
        gap[~np.asarray(tr.face_found[a:b], bool)] = np.nan  # no face: no evidence
        pairs.append((clip, fps, gap, heard(recogniser, clip)))
    return pairs


def sync_offset(pairs, reference, max_lag: int = SYNC_MAX_LAG) -> float:
    """Seconds their lips lead their sound in one recording's voice pairs (all at one frame rate), as a
    map of other speakers hears it: the lag (+-max_lag frames) of the best frame-weighted correlation
    of `reference`'s course with the lip gap. Recordings are out of step by different amounts (the
    development footage: -67 to +200 ms); 0 when nothing can be read (too short, no movement)."""
    from ..evaluate.mouth import fill_nan

    if not pairs:
        return 0.0
    fps = pairs[0][1]
    lags = max(1, min(max_lag, int(MAX_SYNC_S * fps)))  # a slow video: no further than a map reads
    curves = []
    for audio, _, gap, phones, *_ in pairs:
        n = min(len(gap), int(len(audio) / SAMPLE_RATE * fps))
        if np.isfinite(gap[:n]).any():
            curves.append((fill_nan(np.asarray(gap[:n], np.float64)), reference.predict(audio, n, fps, phones), fps))
    return _lead_frames(curves, fps, lags) / fps


SYNC_HOW = (f"per recording: the lag (+-{SYNC_MAX_LAG} frames) at which the shipped voice map's course of its sound "
            "best follows its lips (frame-weighted correlation over its segments), in seconds (> 0: the lips lead); "
            "the map reads each recording's sound that much later, a new line at their frame-weighted mean (shift_s)")


def shipped_voice_map():
    """The shipped voice map (the reference a recording's sync is read against), or None when absent."""
    from ..generate.pipeline import DEFAULT_VOICE

    return VoiceMap.load(DEFAULT_VOICE) if DEFAULT_VOICE.is_file() else None


def synced_pairs(part, pairs, sources, reference) -> tuple[list[tuple], dict]:
    """A part's voice pairs, each with its recording's sync_offset (read over that recording's pairs
    of the part) as a fifth item -> (pairs, {video file: offset s})."""
    offsets = {}
    for k in sorted({s["video"] for s in part}):
        mine = [p for s, p in zip(part, pairs) if s["video"] == k]
        offsets[k] = sync_offset(mine, reference) if reference is not None else 0.0
    names = [src["file"] for src in sources]  # two recordings may share a file name (other folders)
    names = [f"{n} (video {k + 1})" if names.count(n) > 1 else n for k, n in enumerate(names)]
    return ([(*p, offsets[s["video"]]) for s, p in zip(part, pairs)],
            {names[k]: round(v, 4) for k, v in offsets.items()})


def _spans(part, sources, tracks, audios):
    """Each segment of a part -> (fps, first frame, end frame, its track, its audio)."""
    for s in part:
        fps, a, b = sources[s["video"]]["fps"], s["start"], s["stop"]
        audio = audios[s["video"]]
        yield fps, a, b, tracks[s["video"]], audio[int(round(a / fps * SAMPLE_RATE)):int(round(b / fps * SAMPLE_RATE))]


def _wmean(pairs) -> float:
    """Mean of (value, frames) pairs weighted by frames."""
    return sum(v * n for v, n in pairs) / sum(n for _, n in pairs)


def measure_fit(actor_dir: Path, sources, tracks, audios, segs, takes: int = 2) -> dict:
    """Held-out lip-sync r (dlib inner-lip gap vs generated mouth opening, best lag within +-2
    frames; take 1, seed 0) and head-pose ratio (typical motion, pose_ratio; takes 1-`takes`,
    seed 0, averaged), the profile vs the default model."""
    from ..evaluate.lipsync import best_lag_corr
    from ..evaluate.mouth import fill_nan, lip_gap, mouth_opening
    from ..generate import load_generator
    from .profile import ActorGenerator

    if not segs["holdout"]:
        return {"note": "no held-out footage (holdout 0 or too short)"}
    gens = {"default": load_generator(None, device="cpu"),
            "actor": ActorGenerator(ActorProfile(actor_dir, _draft_doc(actor_dir)), device="cpu")}
    res = {k: {"r": [], "plain": [], "takes": [[] for _ in range(takes)]} for k in gens}
    real, rates = [], []
    seconds = 0.0
    try:
        for fps, a, b, tr, clip in _spans(segs["holdout"], sources, tracks, audios):
            gap = fill_nan(lip_gap(tr.landmarks[a:b]))
            real_std = tr.pose[a:b, :3].std(0)
            real.append(tr.pose[a:b, :3])
            rates.append(fps)
            seconds += (b - a) / fps
            for k, gen in gens.items():
                e, p, ps = _generate_plain(gen, clip, fps, takes=takes)
                res[k]["r"].append((best_lag_corr(mouth_opening(e), gap)[0], b - a))
                res[k]["plain"].append((float(np.mean(p[:, :3].std(0) / np.maximum(real_std, 1e-6))), b - a))
                for j, q in enumerate(ps):
                    res[k]["takes"][j].append(q[: b - a, :3])
    finally:
        for gen in gens.values():
            gen.close()

    ratios = {k: [pose_ratio(t, real, rates) for t in v["takes"]] for k, v in res.items()}
    return {"holdout_seconds": round(seconds, 1),
            "lipsync_r": {k: round(_wmean(v["r"]), 4) for k, v in res.items()},
            "pose_std_ratio": {k: round(float(np.mean([m for m, _ in v])), 4) for k, v in ratios.items()},
            "pose_std_ratio_axes": {k: np.mean([ax for _, ax in v], axis=0).round(4).tolist()
                                    for k, v in ratios.items()},
            "pose_std_ratio_plain": {k: round(_wmean(v["plain"]), 4) for k, v in res.items()},
            "how": f"default settings, seed 0; r (take 1): dlib inner-lip gap of the tracked held-out frames vs "
                   f"the generated mouth opening, best lag within +-2 frames; pose_std_ratio (takes 1-{takes}, "
                   f"averaged): typical motion, generated / tracked, per pitch/yaw/roll (pose_std_ratio_axes) then "
                   f"their mean, typical motion = median over {POSE_WINDOW_S:g} s windows (half-overlapping, "
                   f"mean-removed) of the window std, the same windows for both; pose_std_ratio_plain (take 1): "
                   f"the old figure, generated std / tracked std over the whole held-out span, mean over the axes"}


def _draft_doc(actor_dir: Path, selected: dict | None = None) -> dict:
    """The profile as far as it is known before actor.json (for the select and fit stages): the
    estimates, with the held-out selection (work/select.json) when there is one or `selected`."""
    work = actor_dir / "work"
    est = json.loads((work / "estimates.json").read_text())
    if selected is None and (work / "select.json").exists():
        selected = json.loads((work / "select.json").read_text())["selected"]
    if selected is not None:
        est["selected"] = selected
    files = {"fcg": "fcg.pt", "bank": "bank/bank.npz"}
    if (actor_dir / VOICE_TRAIN).is_file():
        files["voice_map"] = VOICE_TRAIN
    return {"id": "draft", "files": files, "estimated": est}


def candidate_settings(mouth_weight: float) -> list[dict]:
    """CANDIDATES as the `estimated.selected` each would write (power "w" -> mouth_weight)."""
    return [{"candidate": name, "model": model, "lead_shift": lead,
             "mouth_scale_power": round(float(mouth_weight if power == "w" else power), 4), "voice_weight": 0.0}
            for name, model, lead, power in CANDIDATES]


def choose_candidate(scores: dict, order) -> str:
    """The candidate with the best held-out score (a NaN counts as the worst); a tie goes to the one
    earlier in `order` (the simpler correction, the default model first)."""
    order = [n for n in order if n in scores]
    if not order:
        raise ValueError("no candidate scored")
    key = {n: (float(scores[n]) if np.isfinite(scores[n]) else -np.inf) for n in order}
    return max(order, key=lambda n: (key[n], -order.index(n)))


def _voice_candidate(model: str, weight: float) -> dict:
    name = "default" if model == "default" else "fine-tuned"
    return {"candidate": f"{name} + voice {weight:g}", "model": model, "lead_shift": False,
            "mouth_scale_power": 0.0, "voice_weight": float(weight)}


def voice_weights_scored(sources, tracks, audios, segs, takes: int = SELECT_TAKES) -> dict:
    """Lip-sync r over ALL the footage of the default model's takes with their opening moved w of
    the way to the voice map's out-of-fold course, for each w in VOICE_WEIGHTS (w 0: the default
    product, the shipped voice map included; w > 0: their map in place of the shipped one): every
    frame is fair (the default model never saw it, the course comes from a map fitted without its block)."""
    from ..evaluate.lipsync import best_lag_corr
    from ..evaluate.mouth import fill_nan, lip_gap, mouth_opening
    from ..generate import Generator, load_generator
    from ..generate.voicemap import apply_voice, out_of_fold

    part = segs["train"] + segs["holdout"]
    spans = list(_spans(part, sources, tracks, audios))
    # w 0: the default product (with the shipped voice map); w > 0: their map replaces the shipped one.
    # One model and one recogniser: each line is recognised once, for the map and for both generators.
    product = load_generator(None, device="cpu")
    plain = Generator(product.model, product.meta, product.path, "cpu", recogniser=product.recogniser)
    pairs = voice_pairs(part, sources, tracks, audios, product.recogniser)
    courses = out_of_fold(synced_pairs(part, pairs, sources, product.voice)[0])  # as the voice stage fits
    scores = {w: [] for w in VOICE_WEIGHTS}
    lo, hi = plain.model.exp_lo.float().cpu().numpy(), plain.model.exp_hi.float().cpu().numpy()
    try:
        for (fps, a, b, tr, clip), course in zip(spans, courses):
            gap = fill_nan(lip_gap(tr.landmarks[a:b]))
            shipped, own = product.generate(clip, _settings(fps, takes)), plain.generate(clip, _settings(fps, takes))
            for w in VOICE_WEIGHTS:
                ts = [t.expression for t in shipped] if w == 0 else \
                    [apply_voice(t.expression, course, w, lo, hi) for t in own]
                r = np.mean([best_lag_corr(mouth_opening(e), gap)[0] for e in ts])
                scores[w].append((float(r), len(course)))
    finally:
        product.close()  # and the recogniser plain shares
    return {f"{w:g}": round(_wmean(v), 4) for w, v in scores.items()}


def select_corrections(actor_dir: Path, sources, tracks, audios, segs, est: dict,
                       takes: int = SELECT_TAKES, min_seconds: float = SELECT_MIN_S) -> dict:
    """The select stage (work/select.json), in two steps:

    1. the voice map's weight, on all the footage (voice_weights_scored): the best w (a tie: the
       smaller). 20-40 s judge it, where the held-out tail has 4-8 s.
    2. on the held-out tail (where the fine-tuned model is fair too): with a voice weight w > 0, the
       default or the fine-tuned model, both with the voice at w; with none, the correction candidates
       (CANDIDATES). The best held-out r wins, a tie the earlier. A tail under `min_seconds` is not
       judged: the default model with the voice, or (no voice) every correction as before the selection."""
    from ..evaluate.lipsync import best_lag_corr
    from ..evaluate.mouth import fill_nan, lip_gap, mouth_opening
    from ..generate import load_generator

    fps0 = sources[0]["fps"]
    held = sum((s["stop"] - s["start"]) / sources[s["video"]]["fps"] for s in segs["holdout"])
    w = float(est.get("calibration_seconds", 0.0))
    w = w / (w + MOUTH_PRIOR_S) if w > 0 else 0.0
    has_voice = (actor_dir / VOICE_TRAIN).is_file()
    voice_scores, voice_note = None, "no voice map (see estimated.voice_map)"
    if has_voice:
        try:
            voice_scores, voice_note = voice_weights_scored(sources, tracks, audios, segs, takes), ""
        except ValueError as e:  # too little footage to judge it out of fold: not used
            voice_note = f"voice map not used: {e}"
    voice_w = 0.0
    if voice_scores:
        voice_w = float(max(VOICE_WEIGHTS, key=lambda v: (voice_scores[f"{v:g}"], -v)))
    if voice_w > 0:
        cands = [_voice_candidate("default", voice_w), _voice_candidate("actor", voice_w)]
    else:
        cands = candidate_settings(w)
    how = (f"1. voice weight: lip-sync r over all {sum(s['stop'] - s['start'] for s in segs['train'] + segs['holdout'])} "
           f"frames of the default model's takes 1-{takes} (seed 0) with the opening moved w of the way to the voice "
           f"map's out-of-fold course ({len(VOICE_WEIGHTS)} weights, best wins, a tie the smaller); 2. held-out "
           f"lip-sync r (dlib inner-lip gap vs generated mouth opening, best lag within +-2 frames, frame-weighted over "
           f"the held-out segments, mean of takes 1-{takes}, seed 0) per candidate, the map fitted on the training part "
           f"only ({VOICE_TRAIN}); the best is used (a tie: the earlier); 'mouth (shrunk)' = mouth_scale ** w, "
           f"w = T / (T + {MOUTH_PRIOR_S:g} s), T = {est.get('calibration_seconds', 0)} s")
    common = {"holdout_seconds": round(held, 1), "voice_weight_r": voice_scores, "how": how}
    if voice_note:
        common["voice_note"] = voice_note
    if held < min_seconds:
        pick = cands[0] if voice_w > 0 else next(c for c in cands if c["candidate"] == UNJUDGED)
        return {"selected": dict(pick), "judged": False, **common,
                "note": f"held-out footage {held:.1f} s < {min_seconds:g} s: too short to judge; "
                        + ("the default model with the voice map" if voice_w > 0 else
                           "every correction applied (as before the selection)")}
    shipped_voice = voice_w == 0  # their own map, when used, replaces the shipped one (as ActorGenerator does)
    default = load_generator(None, device="cpu", voice=shipped_voice)
    gens = {"actor": load_generator(actor_dir / "fcg.pt", device="cpu", voice=shipped_voice,
                                    recogniser=default.recogniser), "default": default}  # one recognition per line
    voice = VoiceMap.load(actor_dir / VOICE_TRAIN) if has_voice else None
    parts = {c["candidate"]: [[] for _ in range(takes)] for c in cands}
    profs = {c["candidate"]: ActorProfile(actor_dir, _draft_doc(actor_dir, c)) for c in cands}  # read once
    ranges = {k: (g.model.exp_lo.float().cpu().numpy(), g.model.exp_hi.float().cpu().numpy()) for k, g in gens.items()}
    try:
        for fps, a, b, tr, clip in _spans(segs["holdout"], sources, tracks, audios):
            gap = fill_nan(lip_gap(tr.landmarks[a:b]))
            course = None
            if voice is not None:
                course = voice.predict(clip, b - a, fps, heard(gens["default"].recogniser, clip))
            for model, gen in gens.items():
                if not any(c["model"] == model for c in cands):
                    continue
                ts = gen.generate(clip, _settings(fps, takes))
                lo, hi = ranges[model]
                for c in cands:
                    if c["model"] != model:
                        continue
                    prof = profs[c["candidate"]]
                    for j, t in enumerate(ts):
                        e, _ = prof.adapt(t.expression, t.pose, fps, lo, hi, voice=course)
                        parts[c["candidate"]][j].append((best_lag_corr(mouth_opening(e), gap)[0], b - a))
    finally:
        for gen in gens.values():
            gen.close()

    per_take = {k: [round(float(_wmean(p)), 4) for p in v] for k, v in parts.items()}
    scores = {k: round(float(np.mean(v)), 4) for k, v in per_take.items()}
    best = choose_candidate(scores, [c["candidate"] for c in cands])
    return {"selected": next(c for c in cands if c["candidate"] == best), "judged": True, **common,
            "lipsync_r": scores, "lipsync_r_takes": per_take, "mouth_scale_weight": round(w, 4),
            "candidates": cands, "fps": fps0}


def _settings(fps: float, takes: int):
    from flowvq_shared.settings import GenerateSettings

    return GenerateSettings(fps=fps, takes=takes, seed=0)


def write_bank(actor_dir: Path, sources, tracks, bank_size: int) -> None:
    import cv2

    bank = actor_dir / "bank"
    if (bank / "bank.npz").exists():
        return
    bank.mkdir(parents=True, exist_ok=True)
    cands = []
    for k in range(len(sources)):
        with np.load(actor_dir / "work" / f"crops_{k}.npz") as z:
            cands += [(k, int(f), c) for f, c in zip(z["frames"], z["crops"])]
    pick = np.linspace(0, len(cands) - 1, min(bank_size, len(cands))).round().astype(int)
    exp, pose, vid, fr, names = [], [], [], [], []
    for j, i in enumerate(pick):
        k, f, crop = cands[i]
        name = f"frame_{j:02d}.png"
        tmp = bank / f"frame_{j:02d}.tmp.png"
        cv2.imwrite(str(tmp), crop[:, :, ::-1])
        os.replace(tmp, bank / name)
        exp.append(tracks[k].expression[f]); pose.append(tracks[k].pose[f])
        vid.append(k); fr.append(f); names.append(name)
    identity = np.mean([t.identity for t in tracks], axis=0)
    _save_npz(bank / "bank.npz", expression=np.stack(exp), pose=np.stack(pose), video=np.array(vid),
              frame=np.array(fr), png=np.array(names), identity=identity.astype(np.float32),
              camera=tracks[0].camera.to_array())


def write_mouth_bank(actor_dir: Path, sources, tracks) -> None:
    """bank/mouth.npz from the tracked footage: every frame's lower face with its landmarks."""
    import math

    from ..render.mouth_bank import MAX_ITEMS, BankBuilder
    from ..tracker.frames import iter_video

    path = actor_dir / "bank" / "mouth.npz"
    if path.exists():
        return
    total = sum(int(t.face_found.sum()) for t in tracks)
    builder = BankBuilder(stride=max(1, math.ceil(total / MAX_ITEMS)))
    for src, tr in zip(sources, tracks):
        k = builder.add_source(src["file"])
        for i, rgb in enumerate(iter_video(Path(src["path"]), len(tr.face_found))):  # the frames tracked, streamed
            if tr.face_found[i]:
                builder.add(k, i, rgb, tr.landmarks[i])
    builder.build().save(path)


def add_mouth_bank(actor_dir, videos, max_seconds: float | None = None, progress=None) -> Path:
    """`flowvq actor bank`: give a profile (one learned before dubbing existed) a mouth bank from
    footage of the same person; actor.json names it, and the profile must load strictly after."""
    from ..render.mouth_bank import bank_from_videos

    actor_dir = Path(actor_dir)
    profile = ActorProfile.load(actor_dir)
    for v in videos:
        if not Path(v).is_file():
            raise BadRequest(f"no such video: {v}")
    bank = bank_from_videos(videos, max_seconds=max_seconds, progress=progress)
    bank.save(actor_dir / "bank" / "mouth.npz")
    doc = dict(profile.doc)
    doc["files"] = {**doc["files"], "mouth_bank": "bank/mouth.npz"}
    doc["mouth_bank"] = {"frames": len(bank), "sources": bank.sources, "max_seconds": max_seconds}
    _write_json(actor_dir / "actor.json", doc)
    ActorProfile.load(actor_dir)
    return actor_dir / "bank" / "mouth.npz"


# ---- the whole thing --------------------------------------------------------------------------

def learn(videos, out, holdout: float = 0.2, steps: int = 200, lr: float = 1e-4, batch: int = 64,
          l2: float = 1e-3, eval_every: int = 25, patience: int = 3, bank_size: int = 32,
          max_seconds: float | None = None, actor_id: str | None = None, progress: bool = True,
          keep_work: bool = False, min_seconds: float = MIN_SECONDS, log=print, report=None,
          mouth_bank: bool = True) -> Path:
    """Videos of one person -> the actor profile folder `out` (see the module's docstring).
    `mouth_bank` False: no bank/mouth.npz (~12 kB per frame of footage): a profile of a few MB to share,
    whose dubs take the mouth from the shot itself until `flowvq actor bank` adds one.

    report(fraction, stage), optional: overall progress; it may raise (e.g. Cancelled) to stop between
    steps: what is finished stays in `out/work` and a later call with the same videos resumes."""
    from tqdm import tqdm

    from ..tracker import TrackResult

    if not 0.0 <= holdout < 0.9:
        raise BadRequest(f"--holdout must be in [0, 0.9), got {holdout}")
    if steps < 1:
        raise BadRequest("--steps must be at least 1")
    out = Path(out)
    work = out / "work"
    sources = check_sources(videos, max_seconds, min_seconds)
    if (out / "actor.json").exists():
        prof = ActorProfile.load(out)
        if [s["sha256"] for s in prof.doc["sources"]] != [s["sha256"] for s in sources]:
            raise BadRequest(f"{out} already holds actor {prof.id!r} learned from other footage")
        log(f"{out}: actor {prof.id!r} is already learned from these videos")
        return out
    work.mkdir(parents=True, exist_ok=True)
    prev = work / "sources.json"
    if prev.exists() and json.loads(prev.read_text()).get("sources") != [s["sha256"] for s in sources]:
        raise BadRequest(f"{out} holds work from other footage: give a new folder or delete it")
    _write_json(prev, {"sources": [s["sha256"] for s in sources]})
    stages = ["track"] * len(sources) + list(ACTOR_LEARN_STAGES)
    bar = tqdm(total=len(stages), desc="actor learn", unit="stage", disable=not progress, dynamic_ncols=True)
    timing = json.loads((work / "timing.json").read_text()) if (work / "timing.json").exists() else {}

    finished = [0]

    def say(stage: str, f: float = 0.0) -> None:
        if report is not None:
            report(min(1.0, (finished[0] + f) / len(stages)), stage)

    def done(stage, t0, ran: bool = True):
        # what the profile's stages cost when they last ran: a resumed run's skipped stage keeps its time
        if ran or stage not in timing:
            timing[stage] = round(time.time() - t0, 1)
        _write_json(work / "timing.json", timing)
        bar.update(1)
        finished[0] += 1

    tracks = []
    for k, src in enumerate(sources):
        p = work / f"track_{k}.npz"
        t0 = time.time()
        bar.set_description(f"track {src['file']}")
        if p.exists() and (work / f"crops_{k}.npz").exists():
            tracks.append(TrackResult.load(p))
        else:
            say(f"tracking {src['file']}")
            tracks.append(track_source(src, p, work / f"crops_{k}.npz", bank_size, bar,
                                       on_progress=lambda f, stage: say(stage, f)))
            done(f"track_{k}", t0)
            continue
        bar.update(1)
        finished[0] += 1
    audios = [_audio(s) for s in sources]
    bar.set_description("dataset")
    say("dataset")
    t0 = time.time()
    segs = split_segments(sources, tracks, holdout)
    _write_json(work / "segments.json", segs)
    write_datasets(work, sources, tracks, audios, segs)
    done("dataset", t0)

    bar.set_description("fine-tune")
    say("fine-tune")
    t0 = time.time()
    footage = sum(s["seconds"] for s in sources)
    run_steps = fine_tune_steps(steps, footage)
    ran = not (out / "fcg.pt").exists()
    if ran:
        ft = finetune(work / "train", work / "holdout" if segs["holdout"] else None, out / "fcg.pt", run_steps, lr,
                      batch, l2, eval_every, patience, progress=progress)
        _write_json(work / "finetune.json", ft)
    ft = json.loads((work / "finetune.json").read_text())
    done("finetune", t0, ran)

    bar.set_description("estimate")
    say("estimate")
    t0 = time.time()
    ran = not (work / "estimates.json").exists()
    if ran:
        _write_json(work / "estimates.json", estimate(sources, tracks, audios, segs, out / "fcg.pt"))
    est = json.loads((work / "estimates.json").read_text())
    done("estimate", t0, ran)

    bar.set_description("voice map")
    say("voice map")
    t0 = time.time()
    ran = not (work / "voice.json").exists()
    if ran:
        from ..speech.recogniser import PhoneRecogniser

        rec = PhoneRecogniser()
        try:
            train = voice_pairs(segs["train"], sources, tracks, audios, rec)
            held = voice_pairs(segs["holdout"], sources, tracks, audios, rec)
            # each recording read at its own sync: the training part's for the map the tail judges
            ref = shipped_voice_map()
            train_s, sync_train = synced_pairs(segs["train"], train, sources, ref)
            all_s, sync = synced_pairs(segs["train"] + segs["holdout"], train + held, sources, ref)
            VoiceMap.fit(train_s).save(out / VOICE_TRAIN)
            VoiceMap.fit(all_s).save(out / VOICE_MAP)
            note = {"train": VoiceMap.load(out / VOICE_TRAIN).info, "all": VoiceMap.load(out / VOICE_MAP).info,
                    "sync_s": sync, "sync_s_train": sync_train, "sync_how": SYNC_HOW}
        except ValueError as e:  # too little of their speech: the profile goes without one, and says so
            (out / VOICE_TRAIN).unlink(missing_ok=True)
            (out / VOICE_MAP).unlink(missing_ok=True)
            note = {"note": f"no voice map: {e}"}
        finally:
            rec.close()
        _write_json(work / "voice.json", note)
        (work / "select.json").unlink(missing_ok=True)  # a selection made without the map is stale
    voice_info = json.loads((work / "voice.json").read_text())
    done("voice", t0, ran)

    bar.set_description("select")
    say("select")
    t0 = time.time()
    ran = not (work / "select.json").exists()
    if ran:
        _write_json(work / "select.json", select_corrections(out, sources, tracks, audios, segs, est))
        (work / "fit.json").unlink(missing_ok=True)  # a fit from before the selection would be stale
    sel = json.loads((work / "select.json").read_text())
    est = {**est, "selected": sel["selected"], "selection": {k: v for k, v in sel.items() if k != "selected"},
           "voice_map": voice_info}
    done("select", t0, ran)
    if sel.get("judged"):
        log("held-out selection (lip-sync r): " + ", ".join(f"{k} {v}" for k, v in sel["lipsync_r"].items())
            + f" -> {sel['selected']['candidate']}")
    else:
        log(sel["note"])

    bar.set_description("fit")
    say("fit")
    t0 = time.time()
    ran = not (work / "fit.json").exists()
    if ran:
        _write_json(work / "fit.json", measure_fit(out, sources, tracks, audios, segs))
    fit = json.loads((work / "fit.json").read_text())
    done("fit", t0, ran)

    bar.set_description("bank")
    say("bank")
    t0 = time.time()
    write_bank(out, sources, tracks, bank_size)
    if mouth_bank:
        write_mouth_bank(out, sources, tracks)
    else:  # a resumed run asked for none: what an earlier run of this same learn wrote goes
        (out / "bank" / "mouth.npz").unlink(missing_ok=True)
    done("bank", t0)
    bar.close()

    ident = actor_id or safe_id(out.resolve().name)
    doc = {
        "format": FORMAT, "kind": KIND, "id": ident,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "sources": [{k: s[k] for k in ("file", "sha256", "seconds", "fps", "audio")} for s in sources],
        "footage_seconds": round(footage, 2),
        "settings": {"holdout": holdout, "steps": run_steps, "steps_asked": steps, "lr": lr, "batch": batch,
                     "l2_to_default": l2,
                     "eval_every": eval_every, "patience": patience, "bank_size": bank_size,
                     "max_seconds": max_seconds, "base_checkpoint": "fcg_default.pt", "mouth_bank": mouth_bank},
        "segments": {k: len(v) for k, v in segs.items()},
        "finetune": {k: v for k, v in ft.items() if k != "history"} | {"history": ft.get("history", [])[-20:]},
        "estimated": est,
        "fit": fit,
        "files": {"fcg": "fcg.pt", "bank": "bank/bank.npz"}
        | ({"mouth_bank": "bank/mouth.npz"} if mouth_bank else {})
        | ({"voice_map": VOICE_MAP} if (out / VOICE_MAP).is_file() else {}),
        "timing_s": timing,
        "learn_seconds": round(sum(timing.values()), 1),
        "learn_seconds_per_minute_of_footage": round(sum(timing.values()) / max(footage / 60, 1e-9), 1),
    }
    _write_json(out / "actor.json", doc)
    ActorProfile.load(out)  # what was written must load strictly
    if not keep_work:
        clean_work(out)
    log(f"{out}: actor {ident!r} from {footage:.1f} s of footage in {doc['learn_seconds']:.0f} s; held-out "
        f"lip-sync r {fit.get('lipsync_r', {}).get('actor', float('nan'))} (default "
        f"{fit.get('lipsync_r', {}).get('default', float('nan'))}), pose std ratio "
        f"{fit.get('pose_std_ratio', {}).get('actor', float('nan'))} (default "
        f"{fit.get('pose_std_ratio', {}).get('default', float('nan'))}); uses {est['selected']['candidate']}"
        + (" (voice weight chosen out of fold on all the footage, r by weight: "
           + ", ".join(f"{k} {v}" for k, v in vw.items()) + ")" if (vw := est["selection"].get("voice_weight_r")) else ""))
    return out


def clean_work(out: Path) -> None:
    shutil.rmtree(Path(out) / "work", ignore_errors=True)
