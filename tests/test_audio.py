"""Audio loading: resampling, channel mixing, containers, limits."""
from __future__ import annotations


import numpy as np
import pytest
import soundfile as sf

from flowvq.audio import SAMPLE_RATE, from_samples, load_audio
from flowvq.errors import BadAudio, TooLarge

from conftest import shared_data


def tone(rate: int, seconds: float = 1.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.4 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


@pytest.mark.parametrize("rate, channels", [(8000, 1), (48000, 2), (22050, 1), (44100, 6)])
def test_resampled_to_16k_mono(tmp_path, rate, channels):
    path = tmp_path / f"t{rate}.wav"
    sf.write(path, tone(rate, 1.0, channels), rate)
    a = load_audio(path)
    assert a.samples.ndim == 1 and a.samples.dtype == np.float32
    assert abs(a.samples.shape[0] - SAMPLE_RATE) <= 2 and a.source_rate == rate
    spectrum = np.abs(np.fft.rfft(a.samples))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / a.samples.shape[0] - 440) < 3


def test_bytes_and_path_agree_and_hash_is_of_the_file(tmp_path):
    import hashlib

    path = tmp_path / "x.flac"
    sf.write(path, tone(16000), 16000, format="FLAC")
    a, b = load_audio(path), load_audio(path.read_bytes())
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.sha256 == b.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_clipped_audio_is_accepted_and_bounded():
    a = from_samples(np.clip(tone(16000) * 10, -1, 1), 16000)
    assert np.abs(a.samples).max() <= 1.0


def test_integer_samples_are_scaled():
    a = from_samples((tone(16000) * 32767).astype(np.int16), 16000)
    assert 0.35 < np.abs(a.samples).max() <= 0.41


@pytest.mark.parametrize("x, rate, err, text", [
    (np.zeros(16000, np.float32), 16000, BadAudio, "silent"),
    (tone(16000, 0.2), 16000, BadAudio, "0.20 s"),
    (np.full(16000, np.nan, np.float32), 16000, BadAudio, "NaN"),
    (tone(16000, 1.0), 1000, BadAudio, "sample rate"),
    (np.zeros((0,), np.float32), 16000, BadAudio, "no samples"),
])
def test_refused_samples(x, rate, err, text):
    with pytest.raises(err, match=text):
        from_samples(x, rate)


def test_limit_is_checked_before_decoding(tmp_path):
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", samplerate=8000, channels=1, subtype="PCM_U8") as f:
        f.write(np.zeros(8000 * 30, np.int16))
    with pytest.raises(TooLarge, match="limit is 20 s"):
        load_audio(path, max_seconds=20)


def test_audio_track_of_a_real_video():
    clip = shared_data("video_with_audio")
    mp4 = sorted(clip.glob("*.mp4"))[0]
    a = load_audio(mp4)
    assert a.duration > 3 and np.sqrt(np.mean(a.samples ** 2)) > 1e-3
