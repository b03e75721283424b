"""`python -m flowvq.evaluate.sweep CKPT TEMPS`: median lip-sync r over the real clips for each
temperature (comma-separated), one take, seed 0 - the sampling-scale sweep of docs/fcg.md."""
from __future__ import annotations

import sys

import numpy as np


def main(argv=None) -> int:
    from flowvq_shared.settings import GenerateSettings

    from ..generate import load_generator
    from .clips import find_clips
    from .landmarks import video_landmarks
    from .lipsync import best_lag_corr
    from .mouth import fill_nan, lip_gap, mouth_opening

    argv = sys.argv[1:] if argv is None else argv
    gen = load_generator(argv[0], device="cpu")
    temps = [float(x) for x in (argv[1] if len(argv) > 1 else "1.0").split(",")]
    clips = find_clips()
    gaps = {c.name: fill_nan(lip_gap(video_landmarks(c.video))) for c in clips}
    for temp in temps:
        rs = [best_lag_corr(mouth_opening(gen.generate(c.audio, GenerateSettings(fps=c.fps, seed=0, temperature=temp))[0].expression),
                            gaps[c.name])[0] for c in clips]
        print(f"temperature {temp} (prior scale {temp * gen.model.cfg.sampling_scale:.2f}): median r "
              f"{np.median(rs):.3f}, min {np.min(rs):.3f}, per clip {np.round(rs, 3).tolist()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
