"""Measure an actor profile on the unseen part of a clip, as `flowvq eval` measures lip-sync:

    flowvq actor measure VIDEO ACTOR_DIR --start S [--end E] [--takes 2] [-o JSON]
    (python -m flowvq.actor.measure ... is the same)

r = Pearson correlation of the dlib inner-lip gap of the real video (evaluate/landmarks.py, cached)
with the generated mouth opening (evaluate/mouth.py), best lag within +-2 frames, for actor takes
and default takes from the same audio span, same seeds. Head-pose ratio = generated / real typical
motion (learn.pose_ratio: per pitch/yaw/roll the median over 4 s windows of the window std, then the
mean of the three ratios), the real pose from the project's tracker on the same span (or, with
--pose-from-track NPZ, from an existing track of the clip); pose_std_ratio_plain is the old figure
(one std over the whole span). --span-track NPZ keeps the test span's track: written the first
time, read (if it has the span's frame count) the next, so before/after runs track it once.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

MIN_SPAN_S = 4.0  # one head-motion window; a shorter span says little about lip-sync either


def measure(video: str, actor_dir: str, start: float, end: float | None = None, takes: int = 2,
            pose_track: str | None = None, span_track: str | None = None) -> dict:
    from flowvq_shared.settings import GenerateSettings

    from ..evaluate.clips import extract_audio, video_fps
    from ..evaluate.landmarks import video_landmarks
    from ..evaluate.lipsync import best_lag_corr
    from ..evaluate.mouth import fill_nan, lip_gap, mouth_opening
    from ..errors import BadRequest
    from ..generate import load_generator
    from .learn import _audio, check_sources, pose_ratio
    from .profile import ActorProfile, load_actor

    src = check_sources([video], None, min_seconds=0.0)[0]  # missing, not a video, no or silent sound: one line
    ActorProfile.load(actor_dir)  # strict: a profile that cannot be used is refused before the slow part
    if not 1 <= takes <= 8:
        raise BadRequest(f"--takes must be 1-8, got {takes}")
    if pose_track and not Path(pose_track).is_file():
        raise BadRequest(f"--pose-from-track {pose_track}: no such file")
    if span_track and not Path(span_track).absolute().parent.is_dir():
        raise BadRequest(f"--span-track {span_track}: its folder does not exist")
    fps = video_fps(video)
    audio = _audio(src) if src["audio"] == "sidecar wav" else extract_audio(video)  # a silent video + its .wav
    stop = src["seconds"] if end is None else min(end, src["seconds"])
    if not start >= 0:
        raise BadRequest(f"--start must be 0 s or later, got {start:g}")
    if not stop - start >= MIN_SPAN_S:
        raise BadRequest(f"the measured span is {max(0.0, stop - start):.1f} s of the {src['seconds']:g} s "
                         f"clip: give --start (and --end) with at least {MIN_SPAN_S:g} s between them")
    lm = video_landmarks(video)
    a = int(round(start * fps))
    b = len(lm) if end is None else min(len(lm), int(round(end * fps)))
    found = np.isfinite(lm[a:b]).all(axis=(1, 2))
    if found.mean() < 0.5:
        raise BadRequest(f"a face is found in {100 * found.mean():.0f} % of the measured span's frames: "
                         "measure a span where the person is in frame")
    clip = audio[int(a / fps * 16000):int(b / fps * 16000)]
    gap = fill_nan(lip_gap(lm[a:b]))
    if pose_track:
        from ..tracker import TrackResult
        real_pose = TrackResult.load(pose_track).pose
        pose_note = f"tracked pose of {pose_track} (the learned part of the clip)"
    else:
        from itertools import islice

        from ..tracker import TrackResult, track
        from ..tracker.frames import iter_video
        cached = Path(span_track) if span_track else None
        if cached is not None and cached.is_file() and len(TrackResult.load(cached).pose) == b - a:
            real_pose = TrackResult.load(cached).pose
            pose_note = f"tracked pose of the measured span (read from {cached})"
        else:
            res = track(list(islice(iter_video(Path(video), b), a, None)), fps=fps)  # the span's frames only
            real_pose = res.pose
            pose_note = "tracked pose of the measured span"
            if cached is not None:
                tmp = cached.with_name(cached.stem + ".tmp.npz")
                res.save(tmp)
                tmp.replace(cached)
                pose_note += f" (kept in {cached})"
    real_std = real_pose[:, :3].std(0)
    out = {"video": video, "span_s": [start, b / fps], "fps": fps, "takes": takes, "pose_reference": pose_note}
    for name, gen in (("default", load_generator(None, device="cpu")), ("actor", load_actor(actor_dir, device="cpu"))):
        t0 = time.time()
        ts = gen.generate(clip, GenerateSettings(fps=fps, takes=takes, seed=0))
        gen.close()
        rs = [best_lag_corr(mouth_opening(t.expression), gap) for t in ts]
        plain = [float(np.mean(t.pose[:, :3].std(0) / np.maximum(real_std, 1e-6))) for t in ts]
        typical = [pose_ratio([t.pose], [real_pose], fps) for t in ts]
        out[name] = {"r": [round(r, 4) for r, _ in rs], "lag": [int(l) for _, l in rs],
                     "r_mean": round(float(np.mean([r for r, _ in rs])), 4),
                     "pose_std_ratio": [round(m, 3) for m, _ in typical],
                     "pose_std_ratio_mean": round(float(np.mean([m for m, _ in typical])), 3),
                     "pose_std_ratio_axes": np.mean([ax for _, ax in typical], axis=0).round(3).tolist(),
                     "pose_std_ratio_plain": [round(x, 3) for x in plain],
                     "pose_std_ratio_plain_mean": round(float(np.mean(plain)), 3),
                     "seconds": round(time.time() - t0, 1)}
    out["pose_how"] = ("pose_std_ratio: generated / real typical motion (median over 4 s windows, half-overlapping, "
                       "mean-removed, of the window std) per pitch/yaw/roll (pose_std_ratio_axes, mean over takes), "
                       "then the mean of the three; pose_std_ratio_plain: generated std / real std over the whole span")
    return out


def add_arguments(p) -> None:
    p.add_argument("video", help="a clip of the same person (with sound, or a .wav of the same name beside it)")
    p.add_argument("actor_dir", metavar="ACTOR_DIR")
    p.add_argument("--start", type=float, required=True, help="where the unseen part starts (s)")
    p.add_argument("--end", type=float, help="where it ends (s; default: the clip's end)")
    p.add_argument("--takes", type=int, default=2, help="takes per model, seeds 0.. (default 2)")
    p.add_argument("--pose-from-track", help="an existing track of the clip as the real pose (not the span's)")
    p.add_argument("--span-track", help="NPZ keeping the measured span's track (written once, then read)")
    p.add_argument("-o", "--output", help="also write the JSON here (atomically)")


def run(a) -> int:
    out = measure(a.video, a.actor_dir, a.start, a.end, a.takes, a.pose_from_track, a.span_track)
    if a.output:
        from ..files import write_json
        write_json(a.output, out)
    print(json.dumps(out, indent=1))
    return 0


def main(argv=None) -> int:
    """`python -m flowvq.actor.measure ...`: the same as `flowvq actor measure ...` (bad input: one error line)."""
    import argparse

    from ..errors import FlowVQError

    p = argparse.ArgumentParser(prog="python -m flowvq.actor.measure")
    add_arguments(p)
    try:
        return run(p.parse_args(argv))
    except FlowVQError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
