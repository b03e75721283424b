"""Emotions learned from real faces (issue #15): `flowvq emotion learn` writes each emotion as the
talking class plus its real, speaker-normalised offset inside the flow; the shipped checkpoint's
emotions come from the MEAD actor W009 (docs/emotion.md)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from flowvq.audio import load_audio
from flowvq.cli import main as cli
from flowvq.emotion.adapt import adapt, shown_offset
from flowvq.generate.guidance import GUIDED_INDEX
from flowvq.emotion.real import RealOffsets, collect, label_from_name
from flowvq.errors import BadRequest
from flowvq.fcg.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint
from flowvq.fcg.features import mel_windows
from flowvq.generate.pipeline import frame_count
from flowvq_shared.channels import EMOTIONS

SPEECH = Path(__file__).resolve().parent / "golden" / "speech.wav"
W009 = Path(__file__).resolve().parents[2] / "shared" / "data" / "emotion_3dmm" / "video_silent"


def _raw(model, emotion: str, seconds: float = 2.0) -> np.ndarray:
    """The flow's own output (before guidance, intensity and the clamp), take 1, seed 3."""
    audio = load_audio(SPEECH).samples[: int(16000 * seconds)]
    mel = model.logmel(torch.from_numpy(audio.astype(np.float32)))
    n = frame_count(len(audio), 25.0, 16000)
    win = mel_windows(mel, n, 25.0, model.cfg.features, extra_lookahead=model.cfg.features.inference_lead_frames)
    with torch.no_grad():
        x, _ = model.sample(win, EMOTIONS.index(emotion), torch.zeros(64), [np.random.default_rng([3, 0])])
    return x[0].numpy()


def test_an_adapted_emotion_is_the_neutral_take_plus_its_offset():
    model, meta, _ = load_checkpoint(DEFAULT_CHECKPOINT)
    talking = _raw(model, "talking")
    rng = np.random.default_rng(0)
    off = {"happy": rng.normal(0, 0.2, 64).astype(np.float32), "sad": rng.normal(0, 0.2, 64).astype(np.float32)}
    entry = adapt(model, RealOffsets(off, {"happy": ["p"], "sad": ["p"]}, {"happy": 50, "sad": 50}), meta)
    assert np.abs(_raw(model, "neutral") - talking).max() < 1e-5  # neutral, the reference: talking itself
    for e in ("happy", "sad"):
        # the context is read relative to the display: the speech under the emotion is the talking class's
        assert np.abs(_raw(model, e) - talking - shown_offset(off[e])).max() < 1e-4, e
    # on the speech articulators only what the emotion adds: less than neutral would cut the speech
    assert np.array_equal(shown_offset(off["happy"])[GUIDED_INDEX], np.maximum(off["happy"][GUIDED_INDEX], 0))
    assert np.array_equal(_raw(model, "talking"), talking)  # untouched classes stay bit-identical
    assert np.allclose(entry["offsets"]["happy"], off["happy"], atol=1e-5)
    # idempotent: adapting again does not widen the clamp range twice
    hi = model.exp_hi.clone()
    adapt(model, RealOffsets(off, {}, {}), {**meta, "real_emotions": entry})
    assert torch.allclose(model.exp_hi, hi)


def test_a_checkpoint_written_before_displays_loads_with_none(tmp_path):
    model, meta, _ = load_checkpoint(DEFAULT_CHECKPOINT)
    path = save_checkpoint(tmp_path / "old.pt", model, meta)
    doc = torch.load(path, weights_only=True)
    del doc["state_dict"]["display"]
    torch.save(doc, path)
    again, _, _ = load_checkpoint(path)
    assert float(again.display.abs().sum()) == 0.0


def test_the_shipped_emotions_are_real_faces():
    model, meta, _ = load_checkpoint(DEFAULT_CHECKPOINT)
    doc = meta.get("real_emotions")
    assert doc, "the shipped checkpoint's emotions are not learned from real faces"
    assert set(doc["offsets"]) == {"angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised"}
    assert {s["person"] for s in doc["sources"]} == {"W009"}
    neutral = _raw(model, "neutral")
    names = sorted(doc["offsets"])
    real = np.array([shown_offset(np.array(doc["offsets"][e])) for e in names])
    for e in names:  # what each class adds to the neutral take is its own real offset
        d = (_raw(model, e) - neutral).mean(0)
        cos = real @ d / (np.linalg.norm(real, axis=1) * np.linalg.norm(d))
        assert names[int(np.argmax(cos))] == e and cos.max() > 0.99, (e, cos.round(2))


def test_clips_are_labelled_and_refused_clearly(tmp_path):
    assert label_from_name(Path("W009_front_happy_level3_001.mp4")) == "happy"
    assert label_from_name(Path("anna/sad/take3.mov")) == "sad"
    assert label_from_name(Path("clip_07.mp4")) is None
    for who in ("anna", "ben"):
        for emo in ("neutral", "happy"):
            (tmp_path / who / emo).mkdir(parents=True)
            (tmp_path / who / emo / "a.mp4").write_bytes(b"x")
    clips = collect([tmp_path])
    assert {(c.person, c.label) for c in clips} == {("anna", "neutral"), ("anna", "happy"),
                                                    ("ben", "neutral"), ("ben", "happy")}
    shutil.rmtree(tmp_path / "ben" / "neutral")
    with pytest.raises(BadRequest, match="'ben' has no neutral clip"):
        collect([tmp_path])
    one = tmp_path / "anna" / "happy" / "a.mp4"
    for args, text in ((([one], ["bored"]), "unknown emotion 'bored'"),
                       (([one], ["happy", "sad"]), "2 --label for 1 videos"),
                       (([tmp_path / "nope.mp4"], None), "not found"),
                       (([tmp_path / "anna" / "neutral" / "a.mp4"], None), "only neutral clips")):
        with pytest.raises(BadRequest, match=text):
            collect(*args)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadRequest, match="no videos"):
        collect([tmp_path / "empty"])


def test_cli_refuses_in_one_line(tmp_path, capsys):
    clip = tmp_path / "take_happy.mp4"
    clip.write_bytes(b"x")
    assert cli(["emotion", "learn", str(clip), "-o", str(tmp_path / "e.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "neutral" in err[0]
    assert not (tmp_path / "e.pt").exists()


@pytest.mark.skipif(not W009.is_dir(), reason="../shared/data/emotion_3dmm/ absent (the real MEAD clips)")
def test_learn_from_real_clips_and_generate_with_them(tmp_path, capsys):
    clips = [W009 / "W009_front_neutral_level1_001.mp4", W009 / "W009_front_happy_level3_001.mp4"]
    out = tmp_path / "emotions.pt"
    assert cli(["emotion", "learn", *map(str, clips), "--person", "W009", "--max-seconds", "2", "-q",
                "-o", str(out)]) == 0
    assert cli(["emotion", "show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "real faces" in shown and "happy" in shown and "W009_front_happy_level3_001.mp4" in shown
    _, meta, _ = load_checkpoint(out)
    assert [s["frames"] for s in meta["real_emotions"]["sources"]] == [50, 50]
    for e in ("happy", "neutral"):
        assert cli(["generate", str(SPEECH), "--emotion", e, "--checkpoint", str(out), "--takes", "1",
                    "--no-blinks", "--phone-guidance", "0", "-q", "-o", str(tmp_path / e)]) == 0
    with np.load(tmp_path / "happy" / "take_1.npz") as h, np.load(tmp_path / "neutral" / "take_1.npz") as n:
        d = (h["expression"] - n["expression"]).mean(0)
    real = np.asarray(meta["real_emotions"]["offsets"]["happy"])
    # what the actor raised shows, at the take's own strength (1 +- 0.2); what they lowered is cut where
    # the neutral take is already at 0
    pos = real > 0
    k = float(d[pos] @ real[pos] / (real[pos] @ real[pos]))
    assert 0.8 <= k <= 1.2 and np.abs(d - k * real)[pos].max() < 0.01
    assert d @ real / (np.linalg.norm(d) * np.linalg.norm(real)) > 0.7


def test_a_reference_is_read_as_a_mix_of_the_real_emotions(tmp_path, capsys):
    from flowvq.emotion.real import RealOffsets
    from flowvq.emotion.transfer import reference_mix
    from flowvq.generate import load_generator
    from flowvq_shared.settings import GenerateSettings

    _, meta, _ = load_checkpoint(DEFAULT_CHECKPOINT)
    real = RealOffsets.from_meta(meta["real_emotions"])
    # a face at the learned neutral plus 0.8 of sad reads as 0.8 sad (NNLS over the offsets)
    mix, named = reference_mix(real.neutral + 0.8 * real.offsets["sad"], real)
    assert abs(named["sad"] - 0.8) < 1e-3 and sum(v for e, v in named.items() if e != "sad") < 1e-3
    assert abs(mix.sum() - 1.0) < 1e-6 and abs(mix[EMOTIONS.index("neutral")] - 0.2) < 1e-3
    gen = load_generator(device="cpu")
    audio = load_audio(SPEECH).samples[: 16000 * 2]
    kw = dict(takes=1, seed=2, phone_guidance=0.0, blinks=False)
    ref = gen.generate(audio, GenerateSettings(emotion="talking", **kw),
                       reference_expression=real.neutral + real.offsets["sad"])[0].expression
    sad = gen.generate(audio, GenerateSettings(emotion="sad", **kw))[0].expression
    gen.close()
    assert np.abs(ref - sad).max() < 1e-3  # the reference's emotion is the learned sad, at its strength
    # a reference clip that is not there: one line
    assert cli(["generate", str(SPEECH), "--reference", str(tmp_path / "nope.mp4"), "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --reference")
