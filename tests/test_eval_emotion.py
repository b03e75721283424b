"""Emotion measures of the evaluation: window features, the classifier, speaker-normalised offsets."""
from __future__ import annotations

import numpy as np

from flowvq.evaluate.emotion import (EmotionClassifier, confusion, confusion_markdown, nearest_direction,
                                     offset_directions, window_features)


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
