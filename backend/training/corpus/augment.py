"""Recording-condition augmentation: band-limiting, reverberation, noise, gain.

Applied to the audio only, after the curves are made from the clean speech, so the curves stay
true while the audio looks like many microphones and rooms.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.arange(spec.size, dtype=float)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x / (x.std() + 1e-12)


def _room(rng: np.random.Generator, sr: int) -> np.ndarray:
    """Synthetic impulse response: direct path + exponentially decaying noise tail."""
    rt60 = rng.uniform(0.15, 0.8)
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.normal(size=n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.003 * sr)] = 0.0  # first reflections a few ms after the direct sound
    ir = tail * rng.uniform(0.05, 0.3)
    ir[0] = 1.0
    return ir


def augment(rng: np.random.Generator, audio: np.ndarray, sr: int) -> tuple[np.ndarray, list[str]]:
    """Randomly degraded copy of `audio` (same length) and the list of what was applied."""
    x = audio.astype(np.float64)
    applied = []
    r = rng.random()
    if r < 0.15:  # telephone: 8 kHz round trip and a 300-3400 Hz band
        x = resample_poly(resample_poly(x, 1, 2), 2, 1)[: x.size]
        x = sosfilt(butter(4, [300, 3400], btype="band", fs=sr, output="sos"), x)
        applied.append("telephone")
    elif r < 0.45:
        lo, hi = rng.uniform(40, 250), rng.uniform(3500, 7800)
        x = sosfilt(butter(4, [lo, hi], btype="band", fs=sr, output="sos"), x)
        applied.append(f"band {lo:.0f}-{hi:.0f} Hz")
    if rng.random() < 0.5:
        x = fftconvolve(x, _room(rng, sr))[: x.size]
        applied.append("reverb")
    if rng.random() < 0.75:
        snr = rng.uniform(5.0, 40.0)
        noise = _pink(rng, x.size) if rng.random() < 0.5 else rng.normal(size=x.size)
        power = np.mean(x[np.abs(x) > 0.02 * np.abs(x).max()] ** 2) if np.any(x) else 1e-6
        x = x + noise * np.sqrt(power / 10 ** (snr / 10))
        applied.append(f"noise {snr:.0f} dB")
    peak = np.abs(x).max() + 1e-9
    gain_db = rng.uniform(-24.0, 0.0)
    x = x / peak * 0.95 * 10 ** (gain_db / 20)
    applied.append(f"gain {gain_db:.0f} dB")
    return x.astype(np.float32), applied
