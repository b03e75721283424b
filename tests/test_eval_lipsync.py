"""Lip-sync evaluation pieces, and the shipped model on one real clip (skipped without ../shared/data)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowvq.evaluate.lipsync import PHONE_OPENING, best_lag_corr, ceiling, loudness_curve, phone_curve
from flowvq.evaluate.mouth import lip_gap, mouth_opening
from flowvq_shared.channels import CHANNEL_INDEX

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "talking_3dmm").is_dir(),
                                reason=f"real clips not found at {DATA} (../shared/data next to the checkout)")


def test_best_lag_corr_finds_the_shift():
    rng = np.random.default_rng(0)
    x = np.convolve(rng.standard_normal(300), np.ones(5) / 5, mode="same")
    late = np.r_[np.zeros(2), x[:-2]]  # the prediction is 2 frames late
    r, lag = best_lag_corr(late, x)
    assert lag == 2 and r > 0.99
    r3, _ = best_lag_corr(np.r_[np.zeros(4), x[:-4]], x)
    assert r3 < 0.9  # beyond +-2 frames the shift is not forgiven


def test_mouth_opening_and_lip_gap_measure_opening():
    exp = np.zeros((3, 64), np.float32)
    exp[1, CHANNEL_INDEX["jawOpen"]] = 0.8
    exp[2, CHANNEL_INDEX["mouthClose"]] = 0.5
    m = mouth_opening(exp)
    assert m[1] > m[0] > m[2]
    lm = np.zeros((2, 68, 2))
    lm[:, 36], lm[:, 45] = (0, 0), (100, 0)
    lm[1, [65, 66, 67], 1] = 20  # lower inner lip 20 px below the upper one
    g = lip_gap(lm)
    assert g[0] == 0 and g[1] == pytest.approx(0.2)


def test_phone_curve_holds_each_phone_and_closes_on_bilabials():
    c = phone_curve([("AA", 0.0, 0.2), ("M", 0.2, 0.4)], fps=25, n_frames=10, smooth_frames=0)
    assert c[:5].tolist() == [PHONE_OPENING["AA"]] * 5 and c[5:].tolist() == [0.0] * 5


@needs_data
def test_real_clip_baselines_and_ceiling():
    from flowvq.evaluate.clips import find_clips
    from flowvq.evaluate.run import real_truth

    clip = next(c for c in find_clips(DATA, kinds=("talking_3dmm",)) if c.name == "Obama_clip3")
    truth = real_truth(clip)
    assert np.isfinite(truth["gap"]).all() and len(truth["gap"]) >= 599
    # measured when written: loudness 0.267, phone 0.354, ceiling 0.922 (docs/evaluation_fcg.md)
    assert 0.1 < truth["loud"][0] < 0.45
    assert 0.2 < truth["phone"][0] < 0.55
    assert truth["ceiling"][0] > 0.8
    # the ceiling is a real measurement: shuffled Basel frames lose it
    shuffled = np.random.default_rng(0).permutation(clip.basel_expression)
    assert ceiling(shuffled, truth["gap"])[0] < 0.3
    assert loudness_curve(clip.audio, clip.fps, 10).shape == (10,)
