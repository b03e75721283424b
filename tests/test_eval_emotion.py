"""Emotion measures of the evaluation: window features, the classifier, speaker-normalised offsets."""
from __future__ import annotations

import numpy as np

from flowvq.evaluate.emotion import (EmotionClassifier, confusion, confusion_markdown, nearest_direction,
                                     offset_directions, strength_ratios, strength_summary, window_features)


def fake_curves(offsets: dict[str, int], seed=0, n=75):
    rng = np.random.default_rng(seed)
    out = {}
    for emo, ch in offsets.items():
        x = 0.05 * rng.standard_normal((n, 64)).astype(np.float32) + 0.1
        if ch >= 0:
            x[:, ch] += 0.5
        out[emo] = [(x, 25.0)]
    return out


def test_window_features_shape():
    f = window_features(np.zeros((100, 64)), 25.0)
    assert f.shape == (7, 128)  # 1 s windows, half-second hop
    assert window_features(np.zeros((10, 64)), 25.0).shape == (1, 128)


def test_classifier_and_offsets_recover_distinct_emotions():
    spec = {"neutral": -1, "happy": 23, "sad": 43, "angry": 41}
    train = fake_curves(spec, seed=0)
    test = fake_curves(spec, seed=1)
    clf = EmotionClassifier(list(spec)).fit(train)
    assert [clf.predict_take(test[e][0][0], 25.0) for e in spec] == list(spec)
    dirs = offset_directions(train)
    assert set(dirs) == {"happy", "sad", "angry"}
    neutral = test["neutral"][0][0].mean(0)
    assert [nearest_direction(test[e][0][0].mean(0) - neutral, dirs) for e in dirs] == list(dirs)


def test_confusion_counts_and_markdown():
    m = confusion(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
    assert m.tolist() == [[1, 1], [0, 1]]
    md = confusion_markdown(m, ["a", "b"])
    assert "| a | 1 | 1 | 0.50 |" in md and "| b | 0 | 1 | 1.00 |" in md


def test_confusion_markdown_before_column():
    md = confusion_markdown(np.array([[1, 1], [0, 1]]), ["a", "b"], {"a": 0.0}, "before")
    assert "| accuracy | before |" in md and "| a | 1 | 1 | 0.50 | 0.00 |" in md and "| b | 0 | 1 | 1.00 | - |" in md


def test_strength_ratio_norm_over_real_offset():
    real = {"happy": np.r_[3.0, 4.0, np.zeros(62)], "sad": np.r_[np.zeros(63), 2.0], "angry": np.ones(64)}
    gen = {"happy": [np.r_[0.6, 0.8, np.zeros(62)], 2 * np.r_[3.0, 4.0, np.zeros(62)]],  # |1| / |5|, |10| / |5|
           "sad": [np.r_[np.zeros(63), -2.0]],  # same size, opposite direction: the ratio is a size only
           "angry": [0.1 * np.ones(64)],
           "talking": [np.ones(64)]}  # no real reference: left out
    r = strength_ratios(gen, real)
    assert set(r) == {"happy", "sad", "angry"}
    np.testing.assert_allclose(r["happy"], [0.2, 2.0])
    np.testing.assert_allclose(r["sad"], [1.0])
    np.testing.assert_allclose(r["angry"], [0.1])
    s = strength_summary(r)
    np.testing.assert_allclose([s["per_emotion"][e] for e in ("happy", "sad", "angry")], [1.1, 1.0, 0.1])
    assert s["median"] == 1.0 and s["outside"] == ["angry"] and s["band"] == (0.5, 2.0)


def test_strength_ratio_from_curves_matches_definition():
    """Real offsets from offset_directions (emotion mean - neutral mean); a generated offset of the same
    shape at half the size reads 0.5."""
    curves = fake_curves({"neutral": -1, "happy": 23, "sad": 43}, seed=2)
    dirs = offset_directions(curves)
    r = strength_ratios({e: [0.5 * d] for e, d in dirs.items()}, dirs)
    np.testing.assert_allclose([r["happy"][0], r["sad"][0]], [0.5, 0.5])


def test_classifier_regularisation_and_unequal_clips():
    """Offsets of 0.1 blendshape units and one emotion's clip 4x longer than the others: scikit-learn's
    defaults (C=1, windows weighed equally) flatten the logits until the long clip's emotion wins;
    the time-split choice of C and equal weight per emotion keep all five apart."""
    from sklearn.linear_model import LogisticRegression

    spec = {"neutral": -1, "happy": 23, "sad": 43, "angry": 41, "fear": 5}

    def curves(seed):
        rng = np.random.default_rng(seed)
        out = {}
        for emo, ch in spec.items():
            x = 0.05 * rng.standard_normal((400 if emo == "fear" else 100, 64)) + 0.1
            if ch >= 0:
                x[:, ch] += 0.1
            out[emo] = [(x, 25.0)]
        return out

    train, test = curves(0), curves(1)
    clf = EmotionClassifier(list(spec)).fit(train)
    assert clf.C > 1.0
    assert [clf.predict_take(test[e][0][0], 25.0) for e in spec] == list(spec)
    x, y = EmotionClassifier._windows([(i, train[e]) for i, e in enumerate(spec)])
    default = LogisticRegression(C=1.0, max_iter=5000).fit(x, y)
    read = [spec_i for spec_i, e in enumerate(spec)
            if np.argmax(default.predict_proba(window_features(test[e][0][0], 25.0)[:, :64]).mean(0)) == spec_i]
    assert len(read) <= 2  # what the defaults did: most read as fear


def test_lipsync_only_refuses_bad_options_in_one_line(capsys):
    from flowvq.evaluate.emotion_measure import lipsync_markdown, main

    assert main(["--lipsync-only", "--seeds", "0,x"]) == 2
    assert capsys.readouterr().out.strip() == "error: --seeds must be comma-separated integers, got '0,x'"
    assert main(["--lipsync-only", "--takes", "0"]) == 2
    assert capsys.readouterr().out.startswith("error: --takes must be at least 1")
    res = {"model": {"fear": {"A": 0.55, "B": 0.60}}, "baseline": {"fear": {"A": 0.56, "B": 0.50}}}
    text = lipsync_markdown(res, [0, 100], 8, "cmd")
    assert "the mean r of 16 takes" in text and "| fear | 0.5500 (0.5600) | 0.6000 (0.5000) | -0.0100 |" in text
    assert "Lowest difference: fear, -0.0100 (a cell under the baseline)." in text
