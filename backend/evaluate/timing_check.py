"""Which phone timings to trust: espeak-ng's phoneme events or pocketsphinx forced alignment.

`python -m flowvq.evaluate.timing_check --n 60` speaks corpus utterances and measures, for both
sources: how well their segments fit the acoustics (high-band energy inside S/Z versus inside
open vowels; energy inside pauses versus speech), how much they agree frame by frame, how long
they take, and whether alignment survives the corpus's augmentation. Results: docs/corpus.md.
"""
from __future__ import annotations

import argparse
import multiprocessing
import time

import numpy as np

from ..speech.phonemes import to_visemes
from ..training.corpus.augment import augment
from ..training.corpus.build import CorpusConfig, make_utterance
from ..training.dataset import SAMPLE_RATE

STEP = 0.01  # s, the comparison grid


def _labels(segments, n):
    lab = np.array(["sil"] * n, dtype=object)
    for name, s, e in segments:
        lab[int(round(s / STEP)):int(round(e / STEP))] = name
    return lab


def _bands(audio):
    """Per 10 ms: log energy, and log ratio of 4-8 kHz to 0-1 kHz energy."""
    hop = int(STEP * SAMPLE_RATE)
    n = audio.size // hop
    frames = audio[: n * hop].reshape(n, hop) * np.hanning(hop)
    spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    f = np.fft.rfftfreq(hop, 1 / SAMPLE_RATE)
    high, low = spec[:, f >= 4000].sum(1) + 1e-10, spec[:, f < 1000].sum(1) + 1e-10
    return np.log(spec.sum(1) + 1e-10), np.log(high / low)


def _fit(segments, audio):
    """(S/Z minus open-vowel high-band ratio, speech minus pause energy): bigger = tighter timing."""
    energy, ratio = _bands(audio)
    lab = _labels(segments, energy.size)
    sz, vow = lab == "SZ", np.isin(lab, ["AA", "AE", "AO", "EH"])
    sil, speech = lab == "sil", lab != "sil"
    fric = ratio[sz].mean() - ratio[vow].mean() if sz.any() and vow.any() else np.nan
    pause = energy[speech].mean() - energy[sil].mean() if sil.any() and speech.any() else np.nan
    return fric, pause, lab


def _one(args):
    cfg, index = args
    from ..speech.align import align_phones
    from ..training.corpus.speech import synthesize  # noqa: F401  (fresh process: espeak state starts clean)

    u = make_utterance(cfg, index)
    words = u.text.replace(",", " ").replace(".", " ").replace("?", " ").replace("!", " ").lower().split()
    clean = u.audio / (np.abs(u.audio).max() + 1e-9)  # cfg.augment=0: only a gain was applied
    esp = u.phones
    t0 = time.time()
    try:
        ps = to_visemes(align_phones(clean, words), "arpabet")
    except Exception:
        ps = None
    t_ps = time.time() - t0
    rng = np.random.default_rng([cfg.seed, index, 5])
    noisy, _ = augment(rng, clean, SAMPLE_RATE)
    try:
        ps_noisy = to_visemes(align_phones(noisy, words), "arpabet")
    except Exception:
        ps_noisy = None
    fe, pe, lab_e = _fit(esp, clean)
    out = {"espeak": (fe, pe), "seconds": clean.size / SAMPLE_RATE, "t_ps": t_ps}
    if ps is not None:
        fp, pp, lab_p = _fit(ps, clean)
        n = min(lab_e.size, lab_p.size)
        out["pocketsphinx"] = (fp, pp)
        out["agree"] = float(np.mean(lab_e[:n] == lab_p[:n]))
        if ps_noisy is not None:
            lab_n = _labels(ps_noisy, n)
            out["noisy_agree_with_clean"] = float(np.mean(lab_n[:n] == lab_p[:n]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    cfg = CorpusConfig(seed=args.seed, augment=0.0)
    with multiprocessing.get_context("fork").Pool(args.workers, maxtasksperchild=1) as pool:
        rows = pool.map(_one, [(cfg, i) for i in range(args.n)], chunksize=1)
    ok = [r for r in rows if "pocketsphinx" in r]
    print(f"utterances: {len(rows)}, audio {sum(r['seconds'] for r in rows):.0f} s")
    print(f"pocketsphinx alignment failures (clean): {len(rows) - len(ok)}")
    for src in ("espeak", "pocketsphinx"):
        fr = np.array([r[src][0] for r in ok])
        pa = np.array([r[src][1] for r in ok])
        print(f"{src:13s} S/Z-minus-vowel high-band log ratio: {np.nanmean(fr):.2f}  "
              f"speech-minus-pause log energy: {np.nanmean(pa):.2f}")
    print(f"frame agreement of viseme classes (10 ms): {np.mean([r['agree'] for r in ok]):.3f}")
    noisy = [r["noisy_agree_with_clean"] for r in ok if "noisy_agree_with_clean" in r]
    print(f"pocketsphinx on augmented audio: {len(ok) - len(noisy)} failures, "
          f"agreement with its clean alignment {np.mean(noisy):.3f}")
    print(f"pocketsphinx alignment time: {np.sum([r['t_ps'] for r in rows]):.1f} s for "
          f"{sum(r['seconds'] for r in rows):.0f} s of audio (espeak events: free, part of synthesis)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
