"""Loudness and pitch of the clean speech at the frame rate (librosa), for head motion and brows."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Prosody:
    loudness: np.ndarray  # (T,) z-scored log-RMS, 0 = mean over voiced-or-loud frames
    voiced: np.ndarray  # (T,) bool: the frame has speech energy
    pitch: np.ndarray  # (T,) z-scored log-F0 over voiced frames, 0 where unvoiced


def prosody(audio: np.ndarray, sample_rate: int, n_frames: int, fps: float) -> Prosody:
    import librosa

    hop = int(round(sample_rate / 100.0))  # 10 ms analysis, then sampled at frame times
    rms = librosa.feature.rms(y=audio, frame_length=4 * hop, hop_length=hop, center=True)[0]
    log_rms = np.log(rms + 1e-5)
    speech = log_rms > (log_rms.max() - 3.5)  # within ~30 dB of the loudest frame
    f0 = librosa.yin(audio, fmin=60.0, fmax=450.0, sr=sample_rate, frame_length=1024, hop_length=hop)
    n = min(f0.size, log_rms.size)
    log_rms, speech, f0 = log_rms[:n], speech[:n], f0[:n]
    t_analysis = np.arange(n) * hop / sample_rate
    t = np.arange(n_frames) / fps
    mu, sd = log_rms[speech].mean(), log_rms[speech].std() + 1e-6
    loud = np.interp(t, t_analysis, np.clip((log_rms - mu) / sd, -3.0, 3.0))
    voiced_a = speech & (f0 > 61.0) & (f0 < 449.0)
    lf0 = np.log(f0)
    if voiced_a.sum() > 3:
        z = (lf0 - lf0[voiced_a].mean()) / (lf0[voiced_a].std() + 1e-6)
    else:
        z = np.zeros(n)
    z = np.where(voiced_a, np.clip(z, -3.0, 3.0), 0.0)
    return Prosody(loudness=loud, voiced=np.interp(t, t_analysis, speech.astype(float)) > 0.5,
                   pitch=np.interp(t, t_analysis, z))
