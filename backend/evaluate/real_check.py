"""The corpus's mouth model against real faces: drive it with real phone timings, compare lips.

`python -m flowvq.evaluate.real_check` takes the talking_3dmm clips in ../shared/data, whose
per-frame phone labels (ARPAbet, 30 fps) were produced independently of this project, runs the
corpus's coarticulation model on them with no lead, and correlates the resulting mouth opening
(flowvq.evaluate.mouth, the same measure `flowvq eval` uses) with the person's real inner-lip
gap (dlib) at every lag. The best lag is the real lips' lead over the sound; the best r says how
well the corpus's mouth curves describe a real mouth given the right phones.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from ..speech.phonemes import to_visemes
from ..speech.visemes import Coarticulation, articulate, seal_lips

# StyleTalk/AVCT phone ids (phindex.json of FuxiVirtualHuman/styletalk)
PHONES = ("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG NSN OW OY P R S SH SIL "
          "T TH UH UW V W Y Z ZH").split()


def segments_from_frame_ids(ids: list[int], fps: float) -> list[tuple[str, float, float]]:
    segs = []
    start = 0
    for t in range(1, len(ids) + 1):
        if t == len(ids) or ids[t] != ids[start]:
            segs.append((PHONES[ids[start]], start / fps, t / fps))
            start = t
    return segs


def clip_profile(root, name: str, lead: float = 0.0, fps: float = 30.0) -> dict[int, float]:
    """r(model mouth opening shifted by lag, real lip gap) for lags -8..8 on one talking_3dmm clip."""
    from .landmarks import video_landmarks
    from .lipsync import lag_profile
    from .mouth import fill_nan, lip_gap, mouth_opening

    ids = json.loads((root / "phoneme" / f"{name}_seq.json").read_text())
    gap = fill_nan(lip_gap(video_landmarks(root / "video_silent" / f"{name}.mp4")))
    n = min(len(ids), len(gap))
    segs = to_visemes(segments_from_frame_ids(ids[:n], fps), "arpabet")
    exp, seal = articulate(segs, np.arange(n) / fps, Coarticulation(lead=lead))
    seal_lips(exp, seal)
    return lag_profile(mouth_opening(exp), gap[:n], max_lag=8)


def main(argv=None) -> int:
    from .clips import default_data_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lead", type=float, default=0.0, help="s of lead to put into the model")
    args = ap.parse_args(argv)
    root = default_data_root() / "talking_3dmm"
    if not root.is_dir():
        print(f"no real data at {root}")
        return 1
    fps = 30.0
    rows = []
    for path in sorted((root / "phoneme").glob("*_seq.json")):
        name = path.name[: -len("_seq.json")]
        prof = clip_profile(root, name, args.lead, fps)
        lag = max(prof, key=prof.get)
        rows.append((name, prof[0], lag, prof[lag]))
        print(f"{name:14s} r(lag 0) {prof[0]:.3f}  best lag {lag:+d} frames ({lag / fps * 1000:+.0f} ms) "
              f"r {prof[lag]:.3f}")
    r0 = np.median([r[1] for r in rows])
    lags = np.median([r[2] for r in rows])
    rb = np.median([r[3] for r in rows])
    print(f"median: r(lag 0) {r0:.3f}, best lag {lags:+.1f} frames ({lags / fps * 1000:+.0f} ms), best r {rb:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
