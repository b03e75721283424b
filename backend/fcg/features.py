"""Audio front-end in torch: log-mel (80 bands, hop 200, window 800 at 16 kHz) and one 16x80 window
per output frame at any frame rate.

Written in torch (mel filterbank included) so the GPU machine, which has no librosa, computes the
same features; tests check it against librosa.feature.melspectrogram.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..timeline import frame_count  # the one frame-count rule (ceil)

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 800
    hop: int = 200
    n_mels: int = 80
    window_frames: int = 16  # mel frames each video frame sees (Wav2Lip/IP-LAP convention)
    # Mel frames the window's centre sits after the video frame's time: real lips lead the sound,
    # so the face at t is best predicted from audio slightly after t.
    lookahead_frames: int = 6
    # Extra look-ahead applied only when generating: the training corpus's lips follow espeak's phone
    # timings, while real lips lead the sound by ~100-200 ms; shifting the audio window later makes
    # the generated mouth anticipate the way a real one does (chosen by measurement, docs/fcg.md).
    inference_lead_frames: int = 0
    cmvn: bool = True  # per-utterance mean/variance normalisation: removes speaker/channel colour
    floor: float = 1e-6


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney's auditory scale, as librosa's default (htk=False)
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filterbank(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft//2+1) Slaney-normalised triangular filters, equal to librosa.filters.mel."""
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2: n_mels + 2] - mel_f[:n_mels])
    return (weights * enorm[:, None]).astype(np.float32)


class LogMel(torch.nn.Module):
    """Waveform (N,) or (B, N) at 16 kHz -> log-mel (..., frames, 80), 80 frames per second."""

    def __init__(self, cfg: FeatureConfig = FeatureConfig()):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("fb", torch.from_numpy(mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels)),
                             persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft, periodic=True), persistent=False)

    def power_mel(self, wav: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        spec = torch.stft(wav, n_fft=c.n_fft, hop_length=c.hop, win_length=c.n_fft, window=self.window.to(wav.dtype),
                          center=True, pad_mode="constant", return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2  # (..., freq, frames)
        return torch.matmul(self.fb.to(wav.dtype), power).transpose(-1, -2)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        logmel = torch.log10(self.power_mel(wav) + self.cfg.floor)
        if self.cfg.cmvn:
            logmel = cmvn(logmel)
        return logmel


def cmvn(logmel: torch.Tensor) -> torch.Tensor:
    """Per-utterance, per-band mean/variance normalisation over time (frames axis -2)."""
    mean = logmel.mean(dim=-2, keepdim=True)
    std = logmel.std(dim=-2, keepdim=True).clamp_min(0.1)
    return (logmel - mean) / std




def mel_windows(logmel: torch.Tensor, n_frames: int, fps: float, cfg: FeatureConfig = FeatureConfig(),
                extra_lookahead: int = 0) -> torch.Tensor:
    """(M, 80) log-mel -> (n_frames, window_frames, 80): one window per output frame.

    Frame t is shown at time t/fps; its window is centred on mel frame round(t/fps * 80) + lookahead.
    Windows reaching past the clip are padded with the clip's quietest value per band (silence).
    """
    mel_rate = cfg.sample_rate / cfg.hop
    w = cfg.window_frames
    half = w // 2
    shift = cfg.lookahead_frames + extra_lookahead
    centres = torch.round(torch.arange(n_frames, dtype=torch.float64) / fps * mel_rate).long() + shift
    pad = w + abs(shift) + 2
    floor = logmel.min(dim=0, keepdim=True).values
    padded = torch.cat([floor.expand(pad, -1), logmel, floor.expand(pad + int(centres[-1].item()) + 1, -1)], dim=0)
    idx = centres[:, None] - half + torch.arange(w)[None, :] + pad
    return padded[idx]


def audio_windows(audio: np.ndarray | torch.Tensor, fps: float, cfg: FeatureConfig = FeatureConfig(),
                  logmel: LogMel | None = None, device=None) -> torch.Tensor:
    """Waveform (N,) float 16 kHz -> (ceil(duration*fps), 16, 80) float32 windows."""
    wav = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not torch.is_tensor(audio) else audio,
                          dtype=torch.float32, device=device)
    if logmel is None:
        logmel = LogMel(cfg).to(wav.device)
    mel = logmel(wav)
    return mel_windows(mel, frame_count(wav.shape[-1], fps, cfg.sample_rate), fps, cfg)
