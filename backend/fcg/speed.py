"""`python -m flowvq.fcg.speed [CKPT] [DEVICE]`: seconds per take for 10 s of audio at 25 fps (median of 3
after a warm-up), 1 and 4 takes, flow only (no phone guidance). `flowvq bench` is the product's bench."""
from __future__ import annotations

import sys
import time

import numpy as np


def main(argv=None) -> int:
    from flowvq_shared.settings import GenerateSettings

    from ..generate import load_generator

    argv = sys.argv[1:] if argv is None else argv
    gen = load_generator(argv[0] if argv else None, device=argv[1] if len(argv) > 1 else "cpu")
    audio = (0.1 * np.random.default_rng(0).standard_normal(160000)).astype(np.float32)
    gen.generate(audio[:16000])
    for n in (1, 4):
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            gen.generate(audio, GenerateSettings(takes=n, seed=1, fps=25.0, phone_guidance=0.0))
            ts.append(time.perf_counter() - t)
        print(f"10 s audio, {n} take(s) at 25 fps: median {np.median(ts):.2f} s (runs {np.round(ts, 2).tolist()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
