"""Audio in: any file or byte string a user hands us -> validated 16 kHz mono float32.

soundfile reads wav/flac/ogg/mp3 without decoding more than the header first, so a 2-hour file
is refused by its length before it is loaded; other containers (m4a, mp4, mov) go through the
ffmpeg binary that imageio-ffmpeg ships, bounded to the limit plus a second.
"""
from __future__ import annotations

import hashlib
import io
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BadAudio, TooLarge, readable_file

SAMPLE_RATE = 16000
MIN_SECONDS = 0.5
MAX_SECONDS = 600.0  # 10 minutes per request; longer dialogue is split into shots by the user
SILENCE_RMS = 1e-4  # about -80 dBFS: below this nothing can drive a mouth
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_CHANNELS = 16  # stereo, 5.1, 7.1... are mixed down to mono
MIN_RATE, MAX_RATE = 4000, 192000


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # (N,) float32 at SAMPLE_RATE, mono
    sha256: str  # of the bytes the user gave (file contents or raw samples)
    source_rate: int

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / SAMPLE_RATE


def load_audio(source: str | Path | bytes, max_seconds: float = MAX_SECONDS,
               name: str | None = None) -> Audio:
    """Read and validate audio from a path or a file's bytes (BadAudio / TooLarge on failure)."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        label = name or "audio data"
    else:
        path = readable_file(source, "audio file", BadAudio)
        label = name or str(path)
        if path.stat().st_size > MAX_FILE_BYTES:
            raise TooLarge(f"{label} is larger than {MAX_FILE_BYTES // 2**20} MiB; the limit is "
                           f"{max_seconds:g} s of audio")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise BadAudio(f"cannot read {path}: {e.strerror or e}") from None
    if len(data) == 0:
        raise BadAudio(f"{label} is empty")
    digest = hashlib.sha256(data).hexdigest()
    samples, rate = _decode(data, label, max_seconds)
    return from_samples(samples, rate, max_seconds=max_seconds, label=label, sha256=digest)


def from_samples(samples: np.ndarray, rate: int, max_seconds: float = MAX_SECONDS,
                 label: str = "audio", sha256: str | None = None) -> Audio:
    """Validate raw samples ((N,) or (N, channels)), mix to mono and resample to 16 kHz."""
    x = np.asarray(samples)
    if x.dtype.kind not in "fi" or x.ndim not in (1, 2):
        raise BadAudio(f"{label}: samples must be a 1-D or (N, channels) numeric array")
    if x.dtype.kind == "i":
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float32)
    if x.ndim == 2:  # (N, channels), or (channels, N) from a planar source
        if x.shape[1] <= MAX_CHANNELS:
            x = x.mean(axis=1)
        elif x.shape[0] <= MAX_CHANNELS:
            x = x.mean(axis=0)
        else:
            raise BadAudio(f"{label}: {list(x.shape)} samples: at most {MAX_CHANNELS} channels "
                           "(they are mixed down to mono)")
    try:
        rate_ok = MIN_RATE <= float(rate) <= MAX_RATE and float(rate) == int(rate)
    except (TypeError, ValueError, OverflowError):
        rate_ok = False
    if not rate_ok:
        raise BadAudio(f"{label}: sample rate {rate} Hz is not supported (a whole number of Hz, "
                       f"{MIN_RATE // 1000} kHz to {MAX_RATE // 1000} kHz)")
    if x.size == 0:
        raise BadAudio(f"{label} has no samples")
    if not np.isfinite(x).all():
        raise BadAudio(f"{label} contains NaN or inf samples")
    duration = x.shape[0] / rate
    if duration > max_seconds:
        raise TooLarge(f"{label} is {duration:.1f} s long; the limit is {max_seconds:g} s "
                       "(split it into shorter shots)")
    if duration < MIN_SECONDS:
        raise BadAudio(f"{label} is {duration:.2f} s long; at least {MIN_SECONDS:g} s of speech "
                       "is needed")
    if sha256 is None:
        sha256 = hashlib.sha256(x.tobytes()).hexdigest()
    if int(rate) != SAMPLE_RATE:
        import librosa  # imported here: it costs seconds and only resampling needs it

        x = librosa.resample(x, orig_sr=int(rate), target_sr=SAMPLE_RATE, res_type="soxr_hq")
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    if rms < SILENCE_RMS:
        raise BadAudio(f"{label} is silent (RMS {20 * np.log10(max(rms, 1e-12)):.0f} dBFS): "
                       "nothing to lip-sync")
    return Audio(samples=x, sha256=sha256, source_rate=int(rate))


def _decode(data: bytes, label: str, max_seconds: float) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            if f.frames / max(f.samplerate, 1) > max_seconds:
                raise TooLarge(f"{label} is {f.frames / f.samplerate:.1f} s long; the limit is "
                               f"{max_seconds:g} s (split it into shorter shots)")
            return f.read(dtype="float32", always_2d=True), f.samplerate
    except TooLarge:
        raise
    except Exception:  # soundfile raises several types for unknown containers: try ffmpeg next
        pass
    return _decode_ffmpeg(data, label, max_seconds), SAMPLE_RATE


def _decode_ffmpeg(data: bytes, label: str, max_seconds: float) -> np.ndarray:
    import tempfile

    import imageio_ffmpeg

    # a file, not a pipe: mp4/mov keep their index at the end and need seeking
    with tempfile.NamedTemporaryFile(suffix=".media") as tmp:
        tmp.write(data)
        tmp.flush()
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", tmp.name,
               "-t", f"{max_seconds + 1:.3f}", "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE),
               "-f", "s16le", "pipe:1"]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise BadAudio(f"{label}: decoding took too long") from None
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0 and ("does not contain any stream" in err
                                 or "matches no streams" in err):
        raise BadAudio(f"{label} has no audio track")
    if proc.returncode != 0 or len(proc.stdout) < 2:
        raise BadAudio(f"{label} is not an audio file flowvq can read "
                       "(wav, flac, ogg, mp3, or a video with an audio track)")
    x = np.frombuffer(proc.stdout[: len(proc.stdout) // 2 * 2], dtype="<i2")
    if x.shape[0] > max_seconds * SAMPLE_RATE:
        raise TooLarge(f"{label} is longer than the limit of {max_seconds:g} s "
                       "(split it into shorter shots)")
    return x.astype(np.float32)[:, None] / 32768.0
