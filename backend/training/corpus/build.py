"""The starter corpus: synthetic utterances with expression and pose curves, written as a dataset.

Utterance i depends only on (seed, i): its text, voice, emotion, curves and augmentation come
from `numpy.random.default_rng([seed, i])`, and it is made in a fresh worker process (espeak-ng
keeps state between utterances), so a corpus is identical whatever --workers is.
"""
from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from flowvq_shared.channels import CHANNEL_INDEX, EMOTIONS, N_EXPRESSION

from ..dataset import SAMPLE_RATE, DatasetWriter, n_frames_for, resample_audio
from ...errors import BadRequest
from ...motion.emotion import STYLES, offset_vector, ou_process
from ...motion.eyes import blink_curves, blink_times, gaze_curves
from ...speech.phonemes import to_visemes
from ...speech.visemes import VOWELS, Coarticulation, articulate, seal_lips
from .augment import augment
from .head_motion import head_pose
from .prosody import prosody
from .speech import Voice, synthesize
from .text import utterance

CORPUS_VERSION = 3  # 2: sharper coarticulation; 3: jaw per viseme fitted to real lips (docs/corpus.md)
LANGUAGES = ("en-us", "en-us", "en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan",
             "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
            "klatt", "klatt2", "klatt3", "klatt4", "Alex", "Annie", "Andy", "belinda", "benjamin",
            "david", "edward", "grandma", "grandpa", "linda", "max", "michael", "paul", "quincy",
            "rob", "robert", "steph", "travis", "victor", "zac", "adam", "aunty", "john")
TIMINGS = ("espeak", "pocketsphinx")


@dataclass(frozen=True)
class CorpusConfig:
    hours: float = 1.0
    seed: int = 0
    fps: float = 25.0
    timing: str = "espeak"  # phone timings: espeak-ng's phoneme events or pocketsphinx alignment
    augment: float = 0.85  # share of utterances with degraded recording conditions
    min_seconds: float = 2.5  # target spoken length per utterance
    max_seconds: float = 7.0
    festival: float = 0.0  # share of utterances spoken by festival's voices of real speakers (festival.py)


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: np.ndarray  # (N,) float32 16 kHz, augmented
    expression: np.ndarray  # (T, 64) float32
    pose: np.ndarray  # (T, 6) float32
    emotion: str
    speaker: str
    text: str
    augmentation: str
    phones: list  # (viseme class, start, end) after padding, for tests and inspection
    lead: float  # s the articulation leads the sound
    timing: str = "espeak"  # where the phone timings came from


def _emotion_for(seed: int, index: int) -> str:
    """Balanced classes: each block of 9 consecutive utterances holds every emotion once."""
    perm = np.random.default_rng([seed, index // len(EMOTIONS), 9]).permutation(len(EMOTIONS))
    return EMOTIONS[int(perm[index % len(EMOTIONS)])]


def make_utterance(cfg: CorpusConfig, index: int) -> Utterance:
    rng = np.random.default_rng([cfg.seed, index])
    emotion = _emotion_for(cfg.seed, index)
    style = STYLES[emotion]
    voice = Voice(name=f"{LANGUAGES[rng.integers(len(LANGUAGES))]}+{VARIANTS[rng.integers(len(VARIANTS))]}",
                  rate=int(np.clip(rng.uniform(120, 220) * style.rate, 100, 260)),
                  pitch=int(np.clip(rng.uniform(20, 80) + style.pitch, 0, 99)),
                  pitch_range=int(np.clip(rng.uniform(30, 80) + style.pitch_range, 0, 99)),
                  word_gap=int(rng.choice([0, 0, 0, 1, 2])))
    text, words = utterance(rng, rng.uniform(cfg.min_seconds, cfg.max_seconds), voice.rate,
                            question=0.3 if emotion == "surprised" else 0.15,
                            exclaim=0.3 if emotion in ("angry", "surprised", "happy") else 0.08)
    speech, speaker, alphabet = _speak(cfg, index, text, voice, style.rate)
    clean = resample_audio(speech.audio, speech.sample_rate)
    head, tail = rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.4)
    clean = np.concatenate([np.zeros(int(head * SAMPLE_RATE), np.float32), clean,
                            np.zeros(int(tail * SAMPLE_RATE), np.float32)])
    segments = to_visemes([(p, s + head, e + head) for p, s, e in speech.phones], alphabet)
    timing = "espeak" if alphabet == "espeak" else "festival"
    if cfg.timing == "pocketsphinx":
        from ...errors import BadAudio
        from ...speech.align import align_phones

        try:
            segments = to_visemes(align_phones(clean, words), "arpabet")
            timing = "pocketsphinx"
        except BadAudio:  # alignment fails on about half the utterances (docs/corpus.md)
            timing = "espeak (alignment failed)"

    n = n_frames_for(clean.size, cfg.fps)
    times = np.arange(n) / cfg.fps
    pros = prosody(clean, SAMPLE_RATE, n, cfg.fps)

    # mouth: coarticulated visemes, louder vowels open wider
    params = Coarticulation(lead=rng.uniform(0.10, 0.17), anticipation=rng.uniform(0.025, 0.045),
                            carryover=rng.uniform(0.02, 0.035),
                            strength=style.articulation * rng.uniform(0.8, 1.2))
    gains = []
    for name, s, e in segments:
        k = min(int(0.5 * (s + e) * cfg.fps), n - 1)
        loud = 1.0 + 0.15 * pros.loudness[k] if name in VOWELS else 1.0
        gains.append(float(np.clip(loud, 0.6, 1.3)) * rng.uniform(0.85, 1.15))
    expression, seal = articulate(segments, times, params, np.array(gains))

    # emotion display, breathing slowly and swelling with emphasis
    intensity = rng.uniform(*style.intensity)
    display = offset_vector(style, style.mirror and rng.random() < 0.5,
                            rng.uniform(0.75, 1.25, N_EXPRESSION))
    emphasis = np.clip(gaussian_filter1d(pros.loudness, 0.15 * cfg.fps), -2, 2)
    modulation = (1.0 + ou_process(rng, n, 1 / cfg.fps, 1.5, 0.15)) * (1.0 + 0.5 * style.loud_gain * emphasis)
    expression += intensity * modulation[:, None] * display[None, :]
    accent = np.clip(gaussian_filter1d(pros.pitch, 0.08 * cfg.fps), 0, None)
    brow = style.brow_accent * rng.uniform(0.5, 1.5) * accent
    expression[:, CHANNEL_INDEX["browInnerUp"]] += brow
    expression[:, CHANNEL_INDEX["browOuterUpLeft"]] += 0.7 * brow
    expression[:, CHANNEL_INDEX["browOuterUpRight"]] += 0.7 * brow
    expression += gaze_curves(rng, times)

    # blinks close the lids over whatever the eyes were doing
    onsets = blink_times(rng, n / cfg.fps, style.blinks_per_min * rng.uniform(0.7, 1.3),
                         ~pros.voiced, cfg.fps)
    lids = blink_curves(rng, onsets, times)
    for side, col in (("Left", 0), ("Right", 1)):
        b = lids[:, col]
        blink = CHANNEL_INDEX[f"eyeBlink{side}"]
        expression[:, blink] = np.maximum(expression[:, blink], b)
        expression[:, CHANNEL_INDEX[f"eyeWide{side}"]] *= 1.0 - b
        expression[:, CHANNEL_INDEX[f"eyeSquint{side}"]] += 0.1 * b
    expression = np.clip(expression, 0.0, 1.0)
    seal_lips(expression, seal)

    pose = head_pose(rng, pros, cfg.fps, style, rng.uniform(0.6, 1.4))
    if rng.random() < cfg.augment:
        audio, applied = augment(rng, clean, SAMPLE_RATE)
    else:
        audio, applied = clean * rng.uniform(0.3, 1.0), ["clean"]
    return Utterance(id=f"u{index:06d}", audio=audio.astype(np.float32),
                     expression=expression.astype(np.float32), pose=pose.astype(np.float32),
                     emotion=emotion, speaker=speaker, text=text, augmentation=", ".join(applied),
                     phones=segments, lead=params.lead, timing=timing)


def _speak(cfg: CorpusConfig, index: int, text: str, voice: Voice, style_rate: float):
    """espeak-ng, or with probability cfg.festival one of festival's voices, speed-perturbed.

    The festival draw has its own stream, so with festival=0 the corpus is the one it always was."""
    if cfg.festival > 0:
        frng = np.random.default_rng([cfg.seed, index, 0xFE5])
        if frng.random() < cfg.festival:
            from .festival import FestivalVoice, available_voices, speed_perturb, synthesize_festival

            names = available_voices()
            if not names:
                raise BadRequest("--festival needs festival and its English voices (make setup installs them)")
            # espeak's rate is words per minute around 170; festival's stretch is its inverse
            fv = FestivalVoice(names[int(frng.integers(len(names)))],
                               stretch=float(np.clip(170.0 / voice.rate * frng.uniform(0.9, 1.1), 0.6, 1.6)))
            factor = float(frng.uniform(0.88, 1.15) * (style_rate ** 0.5 if fv.name.endswith("hts") else 1.0))
            # whole percents keep the polyphase resampling ratio small (e.g. 100/93)
            factor = round(float(np.clip(factor, 0.8, 1.25)), 2)
            speech = speed_perturb(synthesize_festival(text, fv), factor)
            return speech, f"{fv.label} speed {factor:.2f}", "arpabet"
    return synthesize(text, voice), voice.label, "espeak"


def _job(args: tuple[CorpusConfig, int]) -> Utterance:
    return make_utterance(*args)


JOB_TIMEOUT_S = 120  # one utterance takes 0.3-2 s; this long means its worker is gone


def _collect(ctx, cfg: CorpusConfig, index: int, result) -> Utterance:
    """The utterance from the pool; a worker that died (the pool never reports it and would wait
    forever) costs one retry in a fresh process, then a clear error."""
    import multiprocessing as mp

    try:
        return result.get(timeout=JOB_TIMEOUT_S)
    except mp.TimeoutError:
        pass
    with ctx.Pool(1, maxtasksperchild=1) as retry:
        try:
            return retry.apply_async(_job, ((cfg, index),)).get(timeout=JOB_TIMEOUT_S)
        except mp.TimeoutError:
            raise BadRequest(f"utterance {index} did not finish in {JOB_TIMEOUT_S} s twice; "
                             "its worker process died or hung") from None


def _warm_up() -> None:
    """Compile librosa's numba kernels once in the parent so forked workers inherit them."""
    x = np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE).astype(np.float32)
    prosody(x, SAMPLE_RATE, 25, 25.0)


def build_corpus(out: str | Path, cfg: CorpusConfig, workers: int = 2, *, count: int | None = None,
                 progress: bool = True, overwrite: bool = False) -> dict:
    """Write the corpus to `out` as a dataset; `count` utterances if given, else cfg.hours of audio.

    Returns a summary (items, hours, seconds taken). dataset.json is written only at the end.
    """
    from tqdm import tqdm

    if not 0.0 <= cfg.festival <= 1.0:
        raise BadRequest(f"--festival is a share between 0 and 1, got {cfg.festival}")
    if cfg.timing not in TIMINGS:
        raise BadRequest(f"timing must be one of {', '.join(TIMINGS)}, got {cfg.timing!r}")
    if count is None and not cfg.hours > 0:
        raise BadRequest(f"--hours must be positive, got {cfg.hours}")
    if workers < 1:
        raise BadRequest(f"--workers must be at least 1, got {workers}")
    target = float("inf") if count is not None else cfg.hours * 3600.0
    limit = count if count is not None else 10 ** 9
    started = time.time()
    _warm_up()
    out = Path(out)
    meta = {"generator": "flowvq corpus build", "corpus_version": CORPUS_VERSION, "config": asdict(cfg)}
    writer = DatasetWriter(out, fps=cfg.fps, overwrite=overwrite, meta=meta)
    texts = []
    if count is not None:
        bar = tqdm(total=count, unit=" utt", disable=not progress, desc="corpus")
    else:
        bar = tqdm(total=round(target), unit=" s", disable=not progress, desc="corpus (audio s)",
                   bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s [{elapsed}<{remaining}]")
    ctx = multiprocessing.get_context("fork")
    with writer, ctx.Pool(workers, maxtasksperchild=1) as pool:
        index = 0
        while index < limit and writer.total_duration < target:
            block = range(index, min(index + 64, limit))
            pending = [(i, pool.apply_async(_job, ((cfg, i),))) for i in block]
            for i, result in pending:
                u = _collect(ctx, cfg, i, result)
                if writer.total_duration >= target:
                    break  # a prefix of the same sequence: identical whatever the block size
                writer.add(u.id, u.audio, SAMPLE_RATE, u.expression, u.pose, u.emotion,
                           speaker=u.speaker, source="synthetic")
                texts.append({"id": u.id, "text": u.text, "augmentation": u.augmentation,
                              "lead": round(u.lead, 4), "timing": u.timing})
                bar.update(1 if count is not None else u.audio.size / SAMPLE_RATE)
            index = block.stop
        bar.close()
        with open(out / "texts.jsonl", "w") as f:  # what was said, for inspection and alignment
            for row in texts:
                f.write(json.dumps(row) + "\n")
        writer.meta["build_seconds"] = round(time.time() - started, 1)
        writer.meta["hours"] = round(writer.total_duration / 3600.0, 4)
    return {"items": len(texts), "hours": writer.total_duration / 3600.0,
            "seconds": time.time() - started, "path": str(out)}
