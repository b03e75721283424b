"""Where the dubbed mouth goes: the new line's mouth channels put on the shot's own face.

The shot is fitted (identity, per-frame expression and pose); the wanted expression is the shot's
with its articulation channels (ARTICULATION) taken from the new line. Both are posed
and projected with the shot's camera, and their landmark difference is added to the shot's own
dlib landmarks, so the fit's error cancels and a dub with the shot's own curves wants exactly the
shot's mouth. Where the new line moves a landmark, only the slow part of the fit's error there is
kept: the rest is the old line's lip motion, which must not leak into the new one."""
from __future__ import annotations

import numpy as np

from flowvq_shared.channels import EXPRESSION_NAMES, N_EXPRESSION

# What a new line changes: articulation (jaw, lips' opening, rounding, spreading, pressing, tongue).
# The shot's emotion on the mouth (smile, frown, dimples, sideways pulls, tightening, chin) is the
# performance as filmed and stays the shot's.
ARTICULATION = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLowerDownLeft", "mouthLowerDownRight",
                "mouthUpperUpLeft", "mouthUpperUpRight", "mouthPressLeft", "mouthPressRight", "mouthRollLower",
                "mouthRollUpper", "mouthStretchLeft", "mouthStretchRight", "mouthShrugLower", "mouthShrugUpper",
                "lipsPart", "lipBiteLower", "tongueOut", "tongueUp", "tongueBetweenTeeth")
MOUTH = np.array([n in ARTICULATION for n in EXPRESSION_NAMES])
FADE_S = 0.2  # after the new line ends, the shot's own mouth comes back over this long


def resample(curves: np.ndarray, fps_in: float, n_out: int, fps_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Curves at fps_in -> n_out frames at fps_out (linear); also (n_out,) True where the line still runs."""
    curves = np.asarray(curves, np.float32)
    t_out = np.arange(n_out) / fps_out
    pos = t_out * fps_in
    last = len(curves) - 1
    inside = pos <= last + 1e-6
    pos = np.clip(pos, 0, last)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, last)
    f = (pos - i0)[:, None].astype(np.float32)
    return curves[i0] * (1 - f) + curves[i1] * f, inside


def line_weight(inside: np.ndarray, fps: float) -> np.ndarray:
    """1 while the line runs, then down to 0 over FADE_S (the shot's mouth returns, no pop)."""
    w = inside.astype(np.float32)
    if inside.all() or not inside.any():
        return w
    end = int(np.nonzero(inside)[0].max()) + 1
    n = max(1, int(round(FADE_S * fps)))
    for k in range(n):
        if end + k < len(w):
            w[end + k] = 1.0 - (k + 1) / (n + 1)
    return w


def wanted_landmarks(model, identity, camera, shot_expression: np.ndarray, shot_pose: np.ndarray,
                     shot_lm: np.ndarray, new_expression: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(T,68,2): the shot's landmarks with the mouth moved from its own expression to the new one."""
    shot_expression = np.asarray(shot_expression, np.float32)
    delta = (np.asarray(new_expression, np.float32) - shot_expression) * MOUTH[None, :]
    want_expr = shot_expression + delta * np.asarray(weight, np.float32)[:, None]
    assert want_expr.shape[1] == N_EXPRESSION

    def project(expr):
        lm3 = model.landmarks(expr, identity)  # (T,68,3) model space
        return model.project(model.pose(lm3, shot_pose), camera)

    p_want, p_shot = project(want_expr), project(shot_expression)
    # What the fit misses of the shot's landmarks (the residual) is part of the shot's own mouth: kept
    # where a landmark stays where the shot had it, and only its slow part (the person's shape, the
    # fit's bias) where the new line moves it: the old line's lip motion must not leak into the new one.
    residual = shot_lm - p_shot
    slow = _lowpass(residual, RESIDUAL_WINDOW)
    eyes = np.linalg.norm(shot_lm[:, 45] - shot_lm[:, 36], axis=1)[:, None]
    moved = np.linalg.norm(p_want - p_shot, axis=2) / np.maximum(eyes, 1e-6)
    keep = np.exp(-moved / KEEP_SCALE)[..., None]
    return (p_want + slow + keep * (residual - slow)).astype(np.float32)


RESIDUAL_WINDOW = 13  # frames (~0.5 s): slower than speech, faster than a head's drift
KEEP_SCALE = 0.01  # a landmark moved by 1% of the eye distance keeps 1/e of the shot's fast residual


def _lowpass(x: np.ndarray, n: int) -> np.ndarray:
    """A centred moving average over time (edges use what there is); NaN frames (no face) are skipped."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x).all(axis=tuple(range(1, x.ndim)))
    v = np.where(ok.reshape((-1,) + (1,) * (x.ndim - 1)), x, 0.0)
    k = np.ones(n)
    num = np.apply_along_axis(lambda c: np.convolve(c, k, mode="same"), 0, v)
    den = np.convolve(ok.astype(float), k, mode="same").reshape((-1,) + (1,) * (x.ndim - 1))
    out = num / np.maximum(den, 1e-9)
    return np.where(ok.reshape((-1,) + (1,) * (x.ndim - 1)), out, x)
