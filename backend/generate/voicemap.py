"""Voice maps: how real mouths open with real voices, learned from video of people speaking.

The flows learned audio -> mouth from synthetic voices; on a real speaker they are a stranger's
guess (lip-sync r 0.32 on the correspondent, 0.38 on Andrew Ng). Video pairs a voice with its lips,
and 20-50 s of it is enough for a linear map from a short window of the sound to how far the lips
are apart (a ridge regression: closed form, fits in a second). Two of them: the shipped map, from
five real speakers (`flowvq train voice`, applied with phone guidance), and an actor's own, from
their footage (`flowvq actor learn`), which replaces it for that actor.

    features  log-mel (the FCG's front-end), per-line normalised, 20 bands + loudness, 14 frames
              from -0.15 s to +0.19 s around the video frame (their lead over the sound is learned);
              and, when the line's phones are heard (pocketsphinx, as phone guidance), the mouth the
              corpus's coarticulation model makes of them: its opening over +-4 frames and its
              articulators (a map of the sound alone is kept for lines without phones)
    target    the dlib inner-lip gap of their tracked frames (what the eye sees; the face-model fit
              flattens a small mouth: the correspondent's fitted opening correlates 0.59 with it)
    strength  ridge, chosen by contiguous 5-fold cross-validation on the footage (the shipped map
              too), or one fold per speaker (`flowvq train voice --cv speaker`; measured against
              the shipped map in docs/fcg.md, not adopted)

The map gives a course of the opening (standardised). `apply_voice` moves each take's opening
toward it: the take keeps its own mean and spread of opening (emotion offsets, the rig's range)
and its own shape; the change is spread over the speech articulators the way the take itself
opens its mouth (regression of its articulators on its opening). `weight` 1 = the map's course,
0 = the take's: the shipped map's is chosen leaving one speaker out (voice/train.py), an actor's out
of fold on their footage (actor/learn.py). Measured in docs/fcg.md and docs/actor.md ("Voice map").
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowvq_shared.channels import CHANNEL_INDEX, SPEECH_ARTICULATORS

from .opening import mouth_opening

FORMAT = 3
INDEX = np.array([CHANNEL_INDEX[n] for n in SPEECH_ARTICULATORS])  # phone guidance's channels
MEL_RATE = 80.0  # log-mel frames per second (hop 200 at 16 kHz)
CONTEXT = (-12, 16, 2)  # mel frames around a video frame: start, stop, step (-0.15 s .. +0.19 s)
BANDS = 20  # the 80 mel bands averaged in fours
N_FEATURES = len(range(*CONTEXT)) * (BANDS + 1)

PHONE_CONTEXT = (-4, 5)  # video frames of the phones' opening around a frame
# video frames at which the phones' articulators are read, per map format: format 2 reads them either
# side too (their course, not one frame: left-out r 0.587 -> 0.596, unseen course median 0.43 -> 0.47)
ARTICULATOR_FRAMES = {1: (0,), 2: (-2, 0, 2), 3: (-2, 0, 2)}  # format 3: + shift_s (the sound's sync)


def n_phone_features(fmt: int = FORMAT) -> int:
    return len(range(*PHONE_CONTEXT)) + len(ARTICULATOR_FRAMES[fmt]) * len(SPEECH_ARTICULATORS)


N_PHONE_FEATURES = n_phone_features()
LAMBDAS = (100.0, 300.0, 1000.0, 3000.0)  # ridge strengths tried by cross-validation
# The sound block's scales tried with the phones (its penalty s^2 times theirs): on speakers it never
# heard the sound misleads more than the phones do (docs/fcg.md "Voice map": left-out r 0.543 -> 0.587).
SOUND_SCALES = (1.0, 2.0, 3.0, 5.0, 10.0)
FOLDS = 5
MIN_FRAMES = 100  # a map needs a few seconds of their speech
MAX_SYNC_S = 0.5  # a recording's sound is read at most this far from its picture (sync_offset searches +-8 frames)


def features(audio: np.ndarray, n_frames: int, fps: float, shift_s: float = 0.0) -> np.ndarray:
    """16 kHz audio -> (n_frames, N_FEATURES) windows of normalised log-mel bands + loudness; `shift_s`:
    the windows sit that much later in the sound (a recording whose lips lead its sound by shift_s)."""
    import torch

    from ..fcg.features import LogMel

    with torch.no_grad():
        mel = LogMel()(torch.from_numpy(np.asarray(audio, np.float32))).numpy().astype(np.float64)
    mel = (mel - mel.mean(0)) / (mel.std(0) + 1e-5)  # per line: the recording's colour and level cancel
    m = np.concatenate([mel.reshape(len(mel), BANDS, -1).mean(-1), mel.mean(1, keepdims=True)], axis=1)
    centre = np.round((np.arange(n_frames) / fps + shift_s) * MEL_RATE).astype(int)
    idx = np.clip(centre[:, None] + np.arange(*CONTEXT)[None, :], 0, len(m) - 1)
    return m[idx].reshape(n_frames, -1)


def phone_features(phones, n_frames: int, fps: float, fmt: int = FORMAT, shift_s: float = 0.0) -> np.ndarray:
    """The recognised phones -> (n_frames, n_phone_features(fmt)): the corpus's coarticulated mouth for
    them (phone guidance's curves): its opening over +-4 frames and its articulators at the format's
    frames. Zeros without speech. `shift_s`: as features(), the phones are read that much later."""
    from .guidance import phone_mouth

    if phones and shift_s:
        phones = [(ph, a - shift_s, b - shift_s) for ph, a, b in phones]
    mouth = phone_mouth(phones, n_frames, fps) if phones else None
    if mouth is None:
        return np.zeros((n_frames, n_phone_features(fmt)))
    o = mouth_opening(mouth)
    frames = np.arange(n_frames)[:, None]
    idx = np.clip(frames + np.arange(*PHONE_CONTEXT)[None, :], 0, n_frames - 1)
    art = mouth[:, INDEX][np.clip(frames + np.asarray(ARTICULATOR_FRAMES[fmt])[None, :], 0, n_frames - 1)]
    return np.concatenate([o[idx], art.reshape(n_frames, -1)], axis=1).astype(np.float64)


def heard(recogniser, audio: np.ndarray):
    """The phones a PhoneRecogniser hears in a line (its cache: generation has usually asked already),
    or None: too short, recognition unavailable or failed (the sound-only map then serves)."""
    fut = recogniser.start(np.asarray(audio, np.float32))
    if fut is None:
        return None
    try:
        return fut.result(timeout=600) or None
    except Exception:  # a crashed recogniser costs the phones, never the take
        return None


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 1e-12 and b.std() > 1e-12 else 0.0


def cv_lambda(x: np.ndarray, gap: np.ndarray, groups: np.ndarray | None = None,
              sound: int = 0) -> tuple[float, float, dict]:
    """The ridge strength (and, with a `sound` block, its scale) whose held-out predictions of the gap
    correlate best with it: contiguous folds, or with `groups` (a label per frame, e.g. the speaker) one
    fold per group. `sound`: x's first `sound` columns are the sound, the rest the phones; the sound is
    divided by each of SOUND_SCALES (its penalty s^2 times the phones') -> (lambda, scale, scores)."""
    if groups is None:
        folds = np.array_split(np.arange(len(x)), FOLDS)
    else:
        folds = [np.flatnonzero(groups == k) for k in np.unique(groups)]
    scales = SOUND_SCALES if 0 < sound < x.shape[1] else (1.0,)
    preds = {(lam, s): np.zeros(len(x)) for s in scales for lam in LAMBDAS}
    eye = np.eye(x.shape[1])
    for f in folds:
        tr = np.setdiff1d(np.arange(len(x)), f)
        mu = gap[tr].mean()
        gram, xy = x[tr].T @ x[tr], x[tr].T @ (gap[tr] - mu)  # once per fold: a scale only rescales them
        for s in scales:
            d = np.ones(x.shape[1])
            d[:sound] /= s
            gram_s, xy_s, xf = gram * np.outer(d, d), xy * d, x[f] * d
            for lam in LAMBDAS:
                preds[(lam, s)][f] = xf @ np.linalg.solve(gram_s + lam * eye, xy_s) + mu
    # by group: the mean of each left-out speaker's r (pooled r would reward getting their levels apart)
    scores = {k: (_corr(pred, gap) if groups is None else float(np.mean([_corr(pred[f], gap[f]) for f in folds])))
              for k, pred in preds.items()}
    best = max(scores, key=lambda k: (scores[k], k))  # a tie: the stronger (smoother) ridge, then scale
    key = (lambda k: f"{k[0]:g}") if len(scales) == 1 else (lambda k: f"{k[0]:g}/{k[1]:g}")
    return best[0], best[1], {key(k): round(v, 4) for k, v in scores.items()}


@dataclass(frozen=True)
class Ridge:
    """One linear map: normalised features -> lip gap, and its fitted course's mean and spread."""
    mu: np.ndarray
    sd: np.ndarray
    w: np.ndarray
    centre: float
    spread: float
    info: dict

    @classmethod
    def fit(cls, x: np.ndarray, g: np.ndarray, lam: float | None = None,
            groups: np.ndarray | None = None, sound: int = 0, scale: float = 1.0) -> "Ridge":
        """`sound`: x's first `sound` columns are the sound block (the rest the phones); its scale is
        chosen with lambda by cross-validation (given: `scale`) and kept in `sd`, so `course` is unchanged."""
        if len(x) < MIN_FRAMES or g.std() < 1e-9:
            raise ValueError(f"a voice map needs {MIN_FRAMES} frames or more with a face and a moving mouth, "
                             f"got {len(x)}")
        mu, sd = x.mean(0), x.std(0) + 1e-6
        x = (x - mu) / sd
        cv = {}
        if lam is None:
            lam, scale, cv = cv_lambda(x, g, groups, sound)
        sd[:sound] *= scale
        x[:, :sound] /= scale
        w = _ridge(x, g - g.mean(), lam)
        fitted = x @ w
        return cls(mu, sd, w, float(fitted.mean()), float(max(fitted.std(), 1e-9)),
                   {"frames": int(len(x)), "features": int(x.shape[1]), "lambda": lam, "sound_scale": scale,
                    "cv_gap_r": cv, "cv_folds": "contiguous" if groups is None else "by speaker",
                    "fitted_gap_r": round(_corr(fitted, g), 4)})

    def course(self, x: np.ndarray) -> np.ndarray:
        return (((x - self.mu) / self.sd) @ self.w - self.centre) / self.spread

    def arrays(self, prefix: str) -> dict:
        return {f"{prefix}_mu": self.mu, f"{prefix}_sd": self.sd, f"{prefix}_w": self.w,
                f"{prefix}_centre": np.float64(self.centre), f"{prefix}_spread": np.float64(self.spread)}

    @classmethod
    def from_arrays(cls, z, prefix: str, n: int, info: dict, where: str) -> "Ridge":
        shapes = {"mu": (n,), "sd": (n,), "w": (n,), "centre": (), "spread": ()}
        arrs = {}
        for k, shape in shapes.items():
            v = np.asarray(z[f"{prefix}_{k}"], np.float64)
            if v.shape != shape or not np.isfinite(v).all():
                raise ValueError(f"voice map {where}: {prefix}_{k} must be {shape or 'one'} finite number(s)")
            arrs[k] = v
        if arrs["spread"] <= 0 or (arrs["sd"] <= 0).any():
            raise ValueError(f"voice map {where}: {prefix} spread and sd must be positive")
        return cls(arrs["mu"], arrs["sd"], arrs["w"], float(arrs["centre"]), float(arrs["spread"]), info)


def _design(pairs) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, list[int]]:
    """pairs -> every frame's sound features, sound + phone features (None unless every pair has
    phones), lip gap (NaN: no face) and each pair's frame count; computed once per fit. A pair's
    optional fifth item is its recording's sync (shift_s, see features())."""
    with_phones = all(p[3] for p in pairs)
    xs, xps, gs, sizes = [], [], [], []
    for audio, fps, gap, phones, *sync in pairs:
        shift = float(sync[0]) if sync else 0.0
        gap = np.asarray(gap, np.float64)
        n = min(len(gap), int(len(audio) / 16000 * fps))
        x = features(audio, n, fps, shift)
        xs.append(x)
        if with_phones:
            xps.append(np.concatenate([x, phone_features(phones, n, fps, shift_s=shift)], axis=1))
        gs.append(gap[:n])
        sizes.append(n)
    return np.concatenate(xs), (np.concatenate(xps) if with_phones else None), np.concatenate(gs), sizes


@dataclass(frozen=True)
class VoiceMap:
    """Their sound (+ the phones heard in it, when there are) -> the course of their lip opening."""
    mel: Ridge  # sound alone: used when no phones are heard (recognition unavailable, a line under 1 s)
    phones: Ridge | None  # sound + phones: used when the line's phones are known
    info: dict

    @property
    def weight(self) -> float:
        """How far a take follows it by default (the shipped map: chosen leaving one speaker out;
        an actor's map: 0, their profile chooses)."""
        return float(self.info.get("weight", 0.0))

    @property
    def shift_s(self) -> float:
        """How much later in a new line's sound the map reads each frame (their footage's sync, see
        features(); 0 for the shipped map and maps before format 3)."""
        return float(self.info.get("shift_s", 0.0))

    @classmethod
    def fit(cls, pairs, by_speaker: bool = False) -> "VoiceMap":
        """pairs: [(audio 16 kHz, fps, lip gap (T,) with NaN where no face, phones or None[, sync s])] ->
        the map (ridge strengths by cross-validation; `by_speaker`: each pair is another speaker, one fold
        each, for a map that must reach speakers it never heard). The phones' map only when every pair has
        phones. Each pair is read at its recording's sync (default 0); a new line at their frame-weighted
        mean (`shift_s`), so recordings whose sound and picture are out of step by different amounts
        teach one shape instead of a blur."""
        x, xp, g, sizes = _design(pairs)
        ok = np.isfinite(g)
        groups = np.repeat(np.arange(len(sizes)), sizes)[ok] if by_speaker and len(sizes) >= 2 else None
        mel = Ridge.fit(x[ok], g[ok], groups=groups)
        ph = Ridge.fit(xp[ok], g[ok], groups=groups, sound=N_FEATURES) if xp is not None else None
        shift = float(np.average([float(p[4]) if len(p) > 4 else 0.0 for p in pairs], weights=sizes))
        return cls(mel, ph, {"format": FORMAT, "articulator_frames": list(ARTICULATOR_FRAMES[FORMAT]),
                             "shift_s": round(shift, 4), "mel": mel.info, "phones": ph.info if ph else None})

    def predict(self, audio: np.ndarray, n_frames: int, fps: float, phones=None) -> np.ndarray:
        """16 kHz audio (+ its phones, [(phone, start s, end s)]) -> (n_frames,) the course of their lip
        opening, standardised (their footage's scale)."""
        x = features(audio, n_frames, fps, self.shift_s)
        if self.phones is not None and phones:
            fmt = int(self.info.get("format", FORMAT))  # a map made by an older flowvq keeps its features
            return self.phones.course(np.concatenate(
                [x, phone_features(phones, n_frames, fps, fmt, self.shift_s)], axis=1))
        return self.mel.course(x)

    def save(self, path: Path) -> None:
        """Atomically: a crash never leaves half a map that a later run would trust."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        arrays = self.mel.arrays("mel") | (self.phones.arrays("phones") if self.phones else {})
        with open(tmp, "wb") as f:
            np.savez(f, info=np.array(json.dumps(self.info)), **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "VoiceMap":
        """Strict: a format this code reads (1: an actor profile learned before 2026-12-02, its phones'
        articulators at one frame; 2: no shift_s, read at 0), the shapes it makes, finite numbers
        (ValueError says which)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                info = json.loads(str(z["info"]))
                if not isinstance(info, dict) or info.get("format") not in ARTICULATOR_FRAMES:
                    raise ValueError(f"format {info.get('format') if isinstance(info, dict) else None!r}; "
                                     f"this flowvq reads formats {sorted(ARTICULATOR_FRAMES)}")
                if info["format"] >= 3:  # the sync it reads a line at: a number of seconds, within the lag searched
                    shift = info.get("shift_s")
                    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not abs(shift) <= MAX_SYNC_S:
                        raise ValueError(f"shift_s must be a number of seconds within +-{MAX_SYNC_S:g}, got {shift!r}")
                mel = Ridge.from_arrays(z, "mel", N_FEATURES, info.get("mel") or {}, str(path))
                ph = None
                if info.get("phones") is not None:
                    ph = Ridge.from_arrays(z, "phones", N_FEATURES + n_phone_features(info["format"]),
                                           info["phones"], str(path))
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"cannot read voice map {path}: {e}") from None
        return cls(mel, ph, info)


def out_of_fold(pairs, folds: int = FOLDS) -> list[np.ndarray]:
    """Each pair's course as a map that never saw it would predict it: the pairs' frames are cut
    into `folds` contiguous blocks, each predicted by a map fitted on the others (the ridge strength
    chosen on all of them; the phones' map when every pair has phones, as VoiceMap.fit/predict do).
    -> [(T_i,)] standardised courses, every frame predicted."""
    x, xp, g, sizes = _design(pairs)
    sound = 0
    if xp is not None:
        x, sound = xp, N_FEATURES
    if len(x) * (folds - 1) / folds < MIN_FRAMES:
        raise ValueError(f"{len(x)} frames are too few to judge a voice map out of fold "
                         f"(each fold's map needs {MIN_FRAMES})")
    ok = np.isfinite(g)
    info = Ridge.fit(x[ok], g[ok], sound=sound).info
    course = np.zeros(len(x))
    for block in np.array_split(np.arange(len(x)), folds):
        train = ok.copy()
        train[block] = False
        course[block] = Ridge.fit(x[train], g[train], info["lambda"], sound=sound,
                                  scale=info["sound_scale"]).course(x[block])
    return np.split(course, np.cumsum(sizes)[:-1])


def apply_voice(expression: np.ndarray, course: np.ndarray, weight: float,
                lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> np.ndarray:
    """One take (T, 64) + the map's standardised course (T,) -> the take whose opening is moved
    `weight` of the way toward its own mean + its own spread x course, along the direction the
    take opens its mouth (its articulators regressed on its opening)."""
    exp = np.array(expression, dtype=np.float64, copy=True)
    n = min(len(exp), len(course))
    if weight <= 0 or n < 2:
        return exp.astype(np.float32)
    art = exp[:n, INDEX]
    o = mouth_opening(exp[:n])
    oc = o - o.mean()
    if oc @ oc < 1e-12:  # a take that does not open its mouth gives no direction: leave it
        return exp.astype(np.float32)
    # articulator change per unit of opening in this take; it opens the mouth by exactly 1 because
    # every channel of the opening is an articulator (OPENING_WEIGHTS within SPEECH_ARTICULATORS)
    d = (oc @ (art - art.mean(0))) / (oc @ oc)
    target = o.mean() + o.std() * np.asarray(course[:n], np.float64)
    delta = weight * (target - o)
    art = art + delta[:, None] * d[None, :]
    if lo is not None and hi is not None:
        art = np.clip(art, lo[INDEX], hi[INDEX])
    exp[:n, INDEX] = np.clip(art, 0.0, 1.0)
    return exp.astype(np.float32)
