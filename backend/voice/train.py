"""`flowvq train voice VIDEO... -o MAP.npz`: the default voice map, learned from real people speaking.

The flows learned audio -> mouth from espeak voices. A voice map (generate/voicemap.py) learned from
a few real speakers' videos (their sound + the phones heard in it -> their dlib lip gap) carries
what real mouths do with real voices; every take then moves its mouth opening part of the way to it
(pipeline: after phone guidance). How far (`info["weight"]`) is chosen here, on the training videos
only: leave one speaker out (a map from the others, the default model's takes on the one left out,
the weight whose lip-sync r is best on average); the map that ships is then fitted on all of them.

The shipped map (`backend/assets/voice_default.npz`) is built from speakers disjoint from every
clip the project measures lip-sync on (docs/fcg.md, "Voice map"): `make voice-map`.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import BadRequest
from ..generate.voicemap import VoiceMap, apply_voice, heard

WEIGHTS = (0.0, 0.2, 0.35, 0.5, 0.7)  # weights tried (a tie: the smaller)
TAKES = 2


def _clip(video: Path, recogniser, max_seconds: float | None):
    from ..evaluate.clips import extract_audio, video_fps
    from ..evaluate.landmarks import video_landmarks
    from ..evaluate.mouth import lip_gap

    fps = video_fps(video)
    audio = extract_audio(video)
    if audio.size == 0 or float(np.abs(audio).max()) < 1e-4:
        raise BadRequest(f"{video}: no sound to learn a voice from")
    gap = lip_gap(video_landmarks(video))  # NaN where no face: left out of the fit
    n = min(len(gap), int(len(audio) / 16000 * fps))
    if max_seconds is not None:
        n = min(n, int(max_seconds * fps))
    if np.isfinite(gap[:n]).sum() < fps * 2:
        raise BadRequest(f"{video}: a face in under 2 s of it")
    audio = audio[: int(n / fps * 16000)]
    return audio, fps, gap[:n], heard(recogniser, audio)


def train_voice(videos, out, max_seconds: float | None = None, log=print, by_speaker: bool = False) -> Path:
    """Videos of real people speaking (one speaker each) -> the default voice map at `out`; `by_speaker`:
    the ridge strengths by leaving one speaker out, not contiguous folds (measured, not shipped: docs/fcg.md)."""
    from ..files import sha256_file
    from ..generate import load_generator
    from ..evaluate.lipsync import best_lag_corr
    from ..evaluate.mouth import fill_nan, mouth_opening
    from flowvq_shared.settings import GenerateSettings

    videos = [Path(v) for v in videos]
    if len(videos) < 2:
        raise BadRequest("give two videos or more: the weight is chosen leaving one speaker out")
    for v in videos:
        if not v.is_file():
            raise BadRequest(f"{v}: no such video")
    t0 = time.time()
    gen = load_generator(None, device="cpu", voice=False)  # the flows alone: the map is what is being learned
    try:
        clips = [_clip(v, gen.recogniser, max_seconds) for v in videos]
        lo, hi = gen.model.exp_lo.float().cpu().numpy(), gen.model.exp_hi.float().cpu().numpy()
        scores = {w: [] for w in WEIGHTS}
        per_clip = {}
        for i, (audio, fps, gap, phones) in enumerate(clips):
            others = [c for j, c in enumerate(clips) if j != i]
            course = VoiceMap.fit(others, by_speaker=by_speaker).predict(audio, len(gap), fps, phones)
            truth = fill_nan(gap)
            takes = gen.generate(audio, GenerateSettings(fps=fps, takes=TAKES, seed=0))
            row = {}
            for w in WEIGHTS:
                r = float(np.mean([best_lag_corr(mouth_opening(apply_voice(t.expression, course, w, lo, hi)), truth)[0]
                                   for t in takes]))
                scores[w].append(r)
                row[f"{w:g}"] = round(r, 4)
            per_clip[videos[i].name] = row
            log(f"{videos[i].name}: left out, lip-sync r by weight {row}")
    finally:
        gen.close()
    mean = {w: float(np.mean(v)) for w, v in scores.items()}
    # a default reaches every speaker: the weight that lifts the worst-served left-out speaker most
    # (their gain over no map), not the best average: the average rewards a weight one speaker pays for
    worst = {w: float(np.min(np.subtract(v, scores[0.0]))) for w, v in scores.items()}
    weight = max(WEIGHTS, key=lambda w: (round(worst[w], 4), -w))
    vm = VoiceMap.fit(clips, by_speaker=by_speaker)
    vm = VoiceMap(vm.mel, vm.phones, {
        **vm.info, "weight": weight,
        "weight_how": f"leave one speaker out over {len(videos)} videos: a map from the others, the default model's "
                      f"takes 1-{TAKES} (seed 0) on the one left out, opening moved w of the way; the weight whose "
                      f"smallest gain over no map among the left-out speakers is largest (a tie: the smaller); "
                      f"smallest gain per weight { {f'{w:g}': round(m, 4) for w, m in worst.items()} }, "
                      f"mean r per weight { {f'{w:g}': round(m, 4) for w, m in mean.items()} }",
        "left_out_r": per_clip,
        "sources": [{"file": v.name, "sha256": sha256_file(v), "seconds": round(len(c[2]) / c[1], 2)}
                    for v, c in zip(videos, clips)],
        "max_seconds": max_seconds, "seconds_to_build": round(time.time() - t0, 1)})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    vm.save(out)
    VoiceMap.load(out)  # what was written must load strictly
    log(f"{out}: voice map from {len(videos)} speakers ({sum(len(c[2]) / c[1] for c in clips):.0f} s), weight {weight:g} "
        f"(left-one-out: mean r {mean[weight]:.3f}, none {mean[0.0]:.3f}; the worst speaker gains {worst[weight]:+.3f})")
    return out
