"""Blinks (a stochastic process, more frequent at pauses and when afraid) and gaze saccades."""
from __future__ import annotations

import numpy as np

from flowvq_shared.channels import CHANNEL_INDEX, N_EXPRESSION

REFRACTORY = 0.35  # s: no second blink starts inside the previous one


def blink_times(rng: np.random.Generator, duration: float, per_minute: float,
                pauses: np.ndarray, fps: float) -> list[float]:
    """Blink onsets: a Poisson process, three times likelier during pauses (phrase ends)."""
    dt = 0.01
    t_grid = np.arange(0.0, duration, dt)
    frame = np.minimum((t_grid * fps).astype(int), pauses.size - 1)
    rate = per_minute / 60.0 * np.where(pauses[frame], 3.0, 0.7)
    times, last = [], -1.0
    for t, r in zip(t_grid, rate):
        if t - last > REFRACTORY and rng.random() < r * dt:
            times.append(float(t))
            last = t
    return times


def blink_curves(rng: np.random.Generator, onsets: list[float], times: np.ndarray) -> np.ndarray:
    """(T, 2) eyelid closure, left and right: fast close (~90 ms), slower reopening (~170 ms)."""
    out = np.zeros((times.size, 2))
    for t0 in onsets:
        close, hold, reopen = rng.uniform(0.07, 0.11), rng.uniform(0.0, 0.04), rng.uniform(0.13, 0.22)
        depth = rng.uniform(0.85, 1.0)
        for side in range(2):
            lag = rng.uniform(0.0, 0.01)
            d = depth * rng.uniform(0.95, 1.0)
            u = times - (t0 + lag)
            rise = np.clip(u / close, 0, 1)
            fall = np.clip(1 - (u - close - hold) / reopen, 0, 1)
            shape = np.where(u < close, np.sin(0.5 * np.pi * rise) ** 2, fall ** 1.5)
            shape = np.where((u < 0) | (u > close + hold + reopen), 0.0, shape)
            out[:, side] = np.maximum(out[:, side], d * shape)
    return out


def gaze_curves(rng: np.random.Generator, times: np.ndarray, spread: float = 0.2) -> np.ndarray:
    """(T, 64) conjugate gaze: fixations of 0.4-2.5 s joined by ~40 ms saccades."""
    out = np.zeros((times.size, N_EXPRESSION))
    gx = np.zeros(times.size)
    gy = np.zeros(times.size)
    t, x, y = 0.0, rng.normal(0, spread / 2), rng.normal(0, spread / 3)
    end = float(times[-1]) if times.size else 0.0
    while t <= end:
        nt = t + rng.uniform(0.4, 2.5)
        nx, ny = rng.normal(0, spread / 2), rng.normal(0, spread / 3)
        ramp = np.clip((times - nt) / 0.04, 0, 1)
        seg = times >= t
        gx[seg] = x + (nx - x) * ramp[seg]
        gy[seg] = y + (ny - y) * ramp[seg]
        t, x, y = nt, nx, ny
    # x > 0: looking to the subject's left (left eye out, right eye in); y > 0: up
    out[:, CHANNEL_INDEX["eyeLookOutLeft"]] = np.clip(gx, 0, None)
    out[:, CHANNEL_INDEX["eyeLookInRight"]] = np.clip(gx, 0, None)
    out[:, CHANNEL_INDEX["eyeLookInLeft"]] = np.clip(-gx, 0, None)
    out[:, CHANNEL_INDEX["eyeLookOutRight"]] = np.clip(-gx, 0, None)
    for side in ("Left", "Right"):
        out[:, CHANNEL_INDEX[f"eyeLookUp{side}"]] = np.clip(gy, 0, None)
        out[:, CHANNEL_INDEX[f"eyeLookDown{side}"]] = np.clip(-gy, 0, None)
    return out
