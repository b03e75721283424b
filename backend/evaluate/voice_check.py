"""The shipped voice map on every real clip: lip-sync r of the flows + phone guidance, without and with it.

    python -m flowvq.evaluate.voice_check [--takes 2] [--seconds 30] [--write docs/evaluation_voice.md]

r = the generated mouth opening vs the dlib inner-lip gap of the real video, best lag within +-2
frames (as `flowvq eval`), mean of takes 1-N (seed 0), default settings, the first `--seconds` of
each clip. Clips the map was learned from (its `sources`) are marked "in-sample": their figures are
not evidence; the others are speakers it never heard.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np


def measure(takes: int = 2, seconds: float = 30.0, voice_map: str | None = None) -> dict:
    from flowvq_shared.settings import GenerateSettings

    from ..generate import load_generator
    from ..generate.voicemap import VoiceMap
    from .clips import find_clips
    from .landmarks import video_landmarks
    from .lipsync import best_lag_corr
    from .mouth import fill_nan, lip_gap, mouth_opening

    gens = {"without": load_generator(None, device="cpu", voice=False), "with": load_generator(None, device="cpu")}
    if voice_map:  # a candidate map instead of the shipped one (judged before it ships)
        gens["with"].voice = VoiceMap.load(Path(voice_map))
    info = gens["with"].voice.info if gens["with"].voice is not None else {}
    trained = {s["file"] for s in info.get("sources", [])}
    rows = []
    try:
        for clip in find_clips():
            gap = fill_nan(lip_gap(video_landmarks(clip.video)))
            n = min(len(gap), int(seconds * clip.fps), int(len(clip.audio) / 16000 * clip.fps))
            audio = clip.audio[: int(n / clip.fps * 16000)]
            row = {"clip": clip.name, "in_sample": clip.video.name in trained}
            for name, gen in gens.items():
                ts = gen.generate(audio, GenerateSettings(fps=clip.fps, takes=takes, seed=0))
                row[name] = round(float(np.mean([best_lag_corr(mouth_opening(t.expression), gap[:n])[0]
                                                 for t in ts])), 4)
            rows.append(row)
            print(json.dumps(row))
    finally:
        for gen in gens.values():
            gen.close()
    unseen = [r for r in rows if not r["in_sample"]]
    return {"rows": rows, "map": voice_map, "weight": info.get("weight"), "sources": sorted(trained), "takes": takes, "seconds": seconds,
            "unseen_median": {k: float(np.median([r[k] for r in unseen])) for k in ("without", "with")} if unseen else None,
            "unseen_min": {k: float(np.min([r[k] for r in unseen])) for k in ("without", "with")} if unseen else None}


def markdown(res: dict, cmd: str) -> str:
    lines = [f"# The {'shipped ' if not res.get('map') else ''}voice map on real clips", "",
             f"Command: `{cmd}`; {platform.machine()} CPU, 2 shared cores, {time.strftime('%Y-%m-%d')}. "
             f"Lip-sync r (generated mouth opening vs the dlib inner-lip gap, best lag +-2 frames), mean of takes "
             f"1-{res['takes']} (seed 0), default settings (phone guidance 0.7), the first {res['seconds']:g} s. "
             f"Map weight {res['weight']}. *In-sample*: a clip the map was learned from (not evidence).", "",
             "| clip | flows + phones (baseline) | + voice map | change | |", "|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['clip']} | {r['without']:.3f} | {r['with']:.3f} | {r['with'] - r['without']:+.3f} | "
                     f"{'in-sample' if r['in_sample'] else 'unseen'} |")
    if res["unseen_median"]:
        lines += ["", f"Unseen clips: median {res['unseen_median']['without']:.3f} -> **{res['unseen_median']['with']:.3f}**, "
                      f"min {res['unseen_min']['without']:.3f} -> **{res['unseen_min']['with']:.3f}**."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m flowvq.evaluate.voice_check", description=__doc__.splitlines()[0])
    p.add_argument("--takes", type=int, default=2)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--write", help="markdown file to write")
    p.add_argument("--map", help="a voice map to judge instead of the shipped one")
    a = p.parse_args(argv)
    res = measure(a.takes, a.seconds, a.map)
    if a.write:
        cmd = "python -m flowvq.evaluate.voice_check " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
        out = Path(a.write)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(markdown(res, cmd))
        tmp.replace(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
