"""Lip-sync scores: correlation of a mouth-opening curve with the real lip gap at the video's frame
rate, best lag within +-2 frames; the loudness baseline, the phone baseline (what Rhubarb-style
tools do) and the measurement ceiling, all scored the same way."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

MAX_LAG = 2


def best_lag_corr(pred: np.ndarray, truth: np.ndarray, max_lag: int = MAX_LAG) -> tuple[float, int]:
    """max over lags in [-max_lag, max_lag] of Pearson r(pred shifted by lag, truth).

    lag > 0 means pred is late (pred[t + lag] pairs with truth[t])."""
    n = min(len(pred), len(truth))
    p, t = np.asarray(pred[:n], np.float64), np.asarray(truth[:n], np.float64)
    best = (-np.inf, 0)
    for lag in range(-max_lag, max_lag + 1):
        a = p[lag:] if lag >= 0 else p[:lag]
        b = t[:n - lag] if lag >= 0 else t[-lag:]
        if a.std() < 1e-12 or b.std() < 1e-12:
            r = 0.0
        else:
            r = float(np.corrcoef(a, b)[0, 1])
        if r > best[0]:
            best = (r, lag)
    return best


def lag_profile(pred, truth, max_lag: int = 8) -> dict[int, float]:
    n = min(len(pred), len(truth))
    p, t = np.asarray(pred[:n], np.float64), np.asarray(truth[:n], np.float64)
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        a = p[lag:] if lag >= 0 else p[:lag]
        b = t[:n - lag] if lag >= 0 else t[-lag:]
        out[lag] = float(np.corrcoef(a, b)[0, 1])
    return out


def loudness_curve(audio: np.ndarray, fps: float, n_frames: int, sr: int = 16000) -> np.ndarray:
    """log-RMS of the audio over each video frame (a window of two frame periods centred on it)."""
    hop = sr / fps
    out = np.empty(n_frames)
    for t in range(n_frames):
        c = (t + 0.5) * hop
        seg = audio[max(0, int(c - hop)):int(c + hop)]
        out[t] = np.log(np.sqrt(np.mean(seg.astype(np.float64) ** 2)) + 1e-5) if seg.size else np.log(1e-5)
    return out


# Mouth opening per CMU phone (0 = closed lips, 1 = wide open), as a lip-sync tool would map visemes.
PHONE_OPENING = {
    "AA": 1.0, "AE": 0.9, "AH": 0.75, "AO": 0.85, "AW": 0.9, "AY": 0.9, "EH": 0.7, "ER": 0.45, "EY": 0.6,
    "IH": 0.5, "IY": 0.35, "OW": 0.6, "OY": 0.7, "UH": 0.4, "UW": 0.3,
    "B": 0.0, "P": 0.0, "M": 0.0, "F": 0.1, "V": 0.1, "TH": 0.25, "DH": 0.25, "S": 0.2, "Z": 0.2,
    "SH": 0.3, "ZH": 0.3, "CH": 0.3, "JH": 0.3, "T": 0.3, "D": 0.3, "N": 0.3, "L": 0.35, "R": 0.35,
    "K": 0.35, "G": 0.35, "NG": 0.35, "W": 0.2, "Y": 0.3, "HH": 0.5, "SIL": 0.0,
}


def recognise_and_align(audio: np.ndarray, sr: int = 16000) -> tuple[str, list[tuple[str, float, float]]]:
    """pocketsphinx: recognise the words, then force-align that transcript -> [(phone, start s, end s)]."""
    from ..speech.align import recognise, to_pcm

    return recognise(to_pcm(audio), sr)


def phone_curve(phones, fps: float, n_frames: int, smooth_frames: float = 1.0) -> np.ndarray:
    """One opening value per phone, held over its segment, lightly smoothed (Gaussian, sigma 1 frame)."""
    curve = np.zeros(n_frames)
    times = (np.arange(n_frames) + 0.5) / fps
    for name, start, end in phones:
        base = "".join(ch for ch in name if not ch.isdigit()).upper()
        curve[(times >= start) & (times < end)] = PHONE_OPENING.get(base, 0.0)
    return gaussian_filter1d(curve, smooth_frames) if smooth_frames > 0 else curve


def ceiling(basel_expression: np.ndarray, gap: np.ndarray, alpha: float = 1.0) -> tuple[float, int]:
    """How well two independent measurements of the same mouth agree: ridge-map the fitted Basel
    expression to the dlib lip gap on the first half, score the mapping on the second half."""
    n = min(len(basel_expression), len(gap))
    x = np.asarray(basel_expression[:n], np.float64)
    y = np.asarray(gap[:n], np.float64)
    h = n // 2
    mu, sd = x[:h].mean(0), x[:h].std(0) + 1e-8
    xa = (x - mu) / sd
    xa = np.concatenate([xa, np.ones((n, 1))], axis=1)
    reg = alpha * np.eye(xa.shape[1])
    reg[-1, -1] = 0
    w = np.linalg.solve(xa[:h].T @ xa[:h] + reg, xa[:h].T @ y[:h])
    return best_lag_corr(xa[h:] @ w, y[h:])
