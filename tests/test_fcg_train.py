"""Training on a tiny real dataset (espeak-ng speech, written with DatasetWriter), checkpoints that
describe themselves, resume, the generator API on the result."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from flowvq.training.dataset import DatasetWriter
from flowvq.errors import BadAudio, BadRequest, CheckpointError, NotImplementedYet
from flowvq.generate import load_generator
from flowvq_shared.protocol import ProtocolError
from flowvq_shared.settings import GenerateSettings
from flowvq.fcg.checkpoint import load_checkpoint
from flowvq.fcg.model import FCGConfig
from flowvq.training.fcg import TrainConfig, train
from flowvq_shared.channels import CHANNEL_INDEX

TINY = FCGConfig(steps=2, tau=3, hidden=16, heads=8, ffn=16, window=2, pose_hidden=8, pose_ffn=8, audio_dim=8,
                 emotion_dim=4, audio_channels=4, n_latents=64)


def speak(text: str, path, voice="en-us") -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    audio, sr = sf.read(path, dtype="float32")
    return audio, sr


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    fps = 25.0
    with DatasetWriter(root / "data", fps=fps) as w:
        for i, (text, emo) in enumerate([("hello there, how are you", "happy"), ("a bad day in the city", "sad"),
                                         ("open the window please", "talking")]):
            audio, sr = speak(text, root / f"{i}.wav")
            n = int(round(len(audio) / sr * fps))
            # mouth follows loudness: a real signal the flow can learn, not a fixed number
            hop = sr / fps
            rms = np.array([np.sqrt(np.mean(audio[int(t * hop):int((t + 1) * hop)] ** 2) + 1e-9) for t in range(n)])
            exp = np.zeros((n, 64), np.float32)
            exp[:, CHANNEL_INDEX["jawOpen"]] = np.clip(rms / rms.max(), 0, 1)
            exp[:, CHANNEL_INDEX["mouthSmileLeft"]] = 0.5 if emo == "happy" else 0.0
            pose = 0.05 * np.sin(np.arange(n)[:, None] / 7.0 + np.arange(6)).astype(np.float32)
            w.add(f"u{i}", audio, sr, exp, pose, emo, speaker="espeak")
    return root / "data"


def test_train_checkpoint_resume_and_generate(tiny_dataset, tmp_path):
    ckpt = tmp_path / "fcg.pt"
    tc = TrainConfig(steps=6, batch=32, consistency_rows=4, checkpoint_every=3, latents=64, warmup=2)
    meta = train(tiny_dataset, ckpt, tc, cfg=TINY, progress=False, log=lambda *a: None)
    assert meta["steps"] == 6
    doc = torch.load(ckpt, weights_only=True)
    assert doc["format"] == 1 and doc["kind"] == "fcg" and doc["config"]["steps"] == 2
    model, meta, state = load_checkpoint(ckpt)
    assert state["step"] == 6 and model.latent_emotion.ge(0).sum() > 0
    # resume continues from step 6 to 9 with the same config
    tc2 = TrainConfig(steps=9, batch=32, consistency_rows=4, checkpoint_every=3, latents=64, warmup=2)
    train(tiny_dataset, ckpt, tc2, resume=True, progress=False, log=lambda *a: None)
    _, meta2, state2 = load_checkpoint(ckpt)
    assert state2["step"] == 9 and meta2["steps"] == 9

    gen = load_generator(ckpt, device="cpu")
    assert gen.info["steps"] == 9 and gen.info["params"] > 0
    audio = sf.read(tiny_dataset / "audio" / "u0.wav", dtype="float32")[0]
    takes = gen.generate(audio, GenerateSettings(emotion="happy", takes=3, seed=5, fps=30.0))
    t_expected = int(np.ceil(len(audio) / 16000 * 30.0))
    assert len(takes) == 3
    for e, p in ((k.expression, k.pose) for k in takes):
        assert e.shape == (t_expected, 64) and p.shape == (t_expected, 6)
        assert e.dtype == np.float32 and np.isfinite(e).all() and np.isfinite(p).all()
    again = gen.generate(audio, GenerateSettings(emotion="happy", takes=1, seed=5, fps=30.0))
    np.testing.assert_allclose(again[0].expression, takes[0].expression, rtol=1e-4, atol=1e-5)
    assert np.abs(takes[0].expression - takes[1].expression).mean() > 0
    # emotion transfer and manifold projection run and keep the shapes
    ref = takes[0].expression[5]
    tr = gen.generate(audio, GenerateSettings(emotion="happy", seed=1, fps=25.0), reference_expression=ref, manifold=True)
    assert tr[0].expression.shape == (int(np.ceil(len(audio) / 16000 * 25)), 64)

    with pytest.raises(ProtocolError, match="unknown emotion"):
        gen.generate(audio, GenerateSettings(emotion="bored"))
    with pytest.raises(ProtocolError, match="intensity"):
        gen.generate(audio, GenerateSettings(intensity=5))
    with pytest.raises(BadAudio):
        gen.generate(np.zeros(0, np.float32))
    with pytest.raises(BadRequest, match="reference_expression"):
        gen.generate(audio, reference_expression=np.zeros(3))


def test_cancel_and_progress(tiny_dataset, tmp_path):
    import threading

    from flowvq.errors import Cancelled

    ckpt = tmp_path / "c.pt"
    train(tiny_dataset, ckpt, TrainConfig(steps=2, batch=16, consistency_rows=2, latents=16, warmup=1),
          cfg=TINY, progress=False, log=lambda *a: None)
    gen = load_generator(ckpt, device="cpu")
    audio = sf.read(tiny_dataset / "audio" / "u1.wav", dtype="float32")[0]
    seen = []
    gen.generate(audio, progress=lambda f, s: seen.append((f, s)))
    assert seen[0][0] == 0.0 and seen[-1] == (1.0, "done")
    ev = threading.Event()
    ev.set()
    with pytest.raises(Cancelled):
        gen.generate(audio, cancel=ev)


def test_missing_and_bad_checkpoints(tmp_path):
    with pytest.raises(NotImplementedYet, match="flowvq train fcg"):
        load_generator(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_generator(bad)
    other = tmp_path / "other.pt"
    torch.save({"format": 1, "kind": "vqig", "config": {}, "state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="not an FCG checkpoint"):
        load_generator(other)


def test_init_from_checkpoint_fine_tunes(tiny_dataset, tmp_path):
    base = tmp_path / "base.pt"
    train(tiny_dataset, base, TrainConfig(steps=2, batch=16, consistency_rows=2, latents=16, warmup=1),
          cfg=TINY, progress=False, log=lambda *a: None)
    tuned = tmp_path / "tuned.pt"
    meta = train(tiny_dataset, tuned, TrainConfig(steps=2, batch=16, consistency_rows=2, latents=16, warmup=1),
                 init=base, progress=False, log=lambda *a: None)
    assert meta["initialised_from"]["steps"] == 2 and "->" in meta["trained_on"]
    a, _, _ = load_checkpoint(base)
    b, _, _ = load_checkpoint(tuned)
    assert a.cfg == b.cfg
    assert any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_frequency_warp_moves_formants_along_the_mel_axis():
    from flowvq.training.fcg import _warp_bands

    bands = torch.arange(80.0)
    peak = torch.exp(-0.5 * ((bands - 40) / 2) ** 2).repeat(3, 16, 1)  # a "formant" at band 40
    out = _warp_bands(peak, torch.tensor([[1.0], [0.8], [1.25]]))
    torch.testing.assert_close(out[0], peak[0])  # factor 1: unchanged
    assert out[1, 0].argmax() == 50 and out[2, 0].argmax() == 32  # band b reads b * factor
    assert out.shape == peak.shape and torch.isfinite(out).all()
