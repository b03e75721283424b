"""Emotion recognisability of generated takes: a classifier on 1-second windows of expression curves,
trained on real faces (the tracker run over the MEAD actor's emotion videos in emotion_3dmm/), applied
to takes generated per emotion."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from flowvq_shared.channels import EMOTIONS

WINDOW_S = 1.0


def window_features(expression: np.ndarray, fps: float, window_s: float = WINDOW_S) -> np.ndarray:
    """(T, 64) -> (n_windows, 128): per-window mean and std of every channel (hop = half a window)."""
    w = max(2, int(round(window_s * fps)))
    hop = max(1, w // 2)
    x = np.asarray(expression, np.float64)
    if len(x) < w:
        return np.concatenate([x.mean(0), x.std(0)])[None]
    out = [np.concatenate([x[s:s + w].mean(0), x[s:s + w].std(0)]) for s in range(0, len(x) - w + 1, hop)]
    return np.stack(out)


class EmotionClassifier:
    """Per-window mean of the 64 channels -> multinomial logistic regression (scikit-learn).

    No standardisation: channels share units (blendshape weights), and z-scoring would blow the
    near-constant channels' noise up to the size of the emotion offsets (with one clip per class,
    the classifier then fits noise; tests/test_eval_emotion.py). Instead the regularisation is chosen
    (`C_GRID`, by the log-loss on each clip's second half when fitted on its first half) and every
    emotion weighs the same whatever its clip's length: offsets are ~0.1-0.4 blendshape units, and
    scikit-learn's default C=1 (made for unit-variance features) flattened the logits until the class
    with the most windows won (W009's own happy windows read as fear, his longest clip)."""

    C_GRID = (1.0, 10.0, 100.0, 1000.0)

    def __init__(self, classes: list[str]):
        self.classes = list(classes)
        self.C = None

    @staticmethod
    def _windows(curves, part=None):
        """(features, labels); part 0 / 1: each clip's first / second half only (the time split)."""
        xs, ys = [], []
        for label, items in curves:
            for exp, fps in items:
                if part is not None:
                    h = len(exp) // 2
                    exp = exp[:h] if part == 0 else exp[h:]
                f = window_features(exp, fps)[:, :exp.shape[1]]
                xs.append(f)
                ys += [label] * len(f)
        return np.concatenate(xs), np.array(ys)

    def fit(self, curves: dict[str, list[tuple[np.ndarray, float]]]) -> "EmotionClassifier":
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import log_loss

        def model(c):
            return LogisticRegression(C=c, max_iter=5000, class_weight="balanced")

        labelled = [(self.classes.index(emo), items) for emo, items in curves.items()]
        xa, ya = self._windows(labelled, 0)
        xb, yb = self._windows(labelled, 1)
        self.C = self.C_GRID[0]
        if len(set(ya.tolist())) == len(set(yb.tolist())) == len(labelled) > 1:  # every class in both halves
            losses = [log_loss(yb, model(c).fit(xa, ya).predict_proba(xb), labels=np.unique(ya)) for c in self.C_GRID]
            self.C = self.C_GRID[int(np.argmin(losses))]
        self.model = model(self.C).fit(*self._windows(labelled))
        return self

    def predict_take(self, expression: np.ndarray, fps: float) -> str:
        """Majority over the take's windows of the mean class probability."""
        p = self.model.predict_proba(window_features(expression, fps)[:, :expression.shape[1]]).mean(0)
        return self.classes[int(self.model.classes_[int(np.argmax(p))])]


def tracked_emotion_curves(videos: dict[str, Path]) -> dict[str, list[tuple[np.ndarray, float]]]:
    """Run the project's tracker over each emotion video -> {emotion: [(expression (T,64), fps)]}."""
    from ..tracker.cache import tracked_expression

    return {emo: [tracked_expression(path)] for emo, path in videos.items()}


def confusion(true: list[str], pred: list[str], classes: list[str]) -> np.ndarray:
    m = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(true, pred):
        m[classes.index(t), classes.index(p)] += 1
    return m


def confusion_markdown(m: np.ndarray, classes: list[str], before: dict[str, float] | None = None,
                       before_label: str = "before") -> str:
    """Confusion matrix as a markdown table; `before` (class -> accuracy) adds a baseline column."""
    extra = f" {before_label} |" if before else ""
    head = "| requested \\ recognised | " + " | ".join(classes) + " | accuracy |" + extra + "\n"
    head += "|---" * (len(classes) + 2 + bool(before)) + "|\n"
    rows = []
    for i, c in enumerate(classes):
        acc = m[i, i] / max(1, m[i].sum())
        b = (f" {before[c]:.2f} |" if c in before else " - |") if before else ""
        rows.append(f"| {c} | " + " | ".join(str(v) for v in m[i]) + f" | {acc:.2f} |" + b)
    return head + "\n".join(rows) + "\n"


MEAD_EMOTIONS = [e for e in EMOTIONS if e != "talking"]


def offset_directions(curves: dict[str, list[tuple[np.ndarray, float]]]) -> dict[str, np.ndarray]:
    """Each emotion's mean expression minus the same person's neutral mean (speaker-normalised)."""
    mean = {e: np.mean([x.mean(0) for x, _ in items], 0) for e, items in curves.items()}
    return {e: mean[e] - mean["neutral"] for e in mean if e != "neutral"}


def nearest_direction(offset: np.ndarray, directions: dict[str, np.ndarray]) -> str:
    """The emotion whose real offset direction has the highest cosine with `offset`."""
    names = list(directions)
    sims = [float(np.dot(offset, directions[n]) / (np.linalg.norm(offset) * np.linalg.norm(directions[n]) + 1e-9))
            for n in names]
    return names[int(np.argmax(sims))]


STRENGTH_BAND = (0.5, 2.0)


def strength_ratios(generated: dict[str, list[np.ndarray]], directions: dict[str, np.ndarray]) -> dict[str, list[float]]:
    """Per emotion: |generated offset| / |real offset| for each generated offset (one per clip's audio).

    generated[e]: offsets (64,) = mean of takes with emotion e minus mean of neutral takes (same audio
    and seeds); directions[e]: the real actor's emotion mean minus his neutral mean (offset_directions)."""
    out = {}
    for e, offs in generated.items():
        if e not in directions:
            continue
        real = float(np.linalg.norm(directions[e]))
        out[e] = [float(np.linalg.norm(o)) / real if real > 0 else float("nan") for o in offs]
    return out


def strength_summary(ratios: dict[str, list[float]], band=STRENGTH_BAND) -> dict:
    """Per emotion the median ratio over clips, their median over emotions, and which lie outside `band`."""
    per = {e: float(np.median(r)) for e, r in ratios.items() if r}
    med = float(np.median(list(per.values()))) if per else float("nan")
    return {"per_emotion": per, "median": med, "band": tuple(band),
            "outside": [e for e, v in per.items() if not band[0] <= v <= band[1]]}
