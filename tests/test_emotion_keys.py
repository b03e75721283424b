"""Emotion keyed over time (inside the flow: the emotion encoder's input, the class-conditional actnorm
and the mixture prior's mean are blended per frame): a line that starts sad and ends happy."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flowvq.audio import load_audio
from flowvq.generate import load_generator
from flowvq.generate.guidance import GUIDED_INDEX
from flowvq_shared.protocol import ProtocolError
from flowvq_shared.settings import GenerateSettings, emotion_track, parse_emotion_keys
from flowvq_shared.takes import Take

SPEECH = Path(__file__).resolve().parent / "golden" / "speech.wav"


def test_keys_parse_validate_and_travel():
    assert parse_emotion_keys("sad:0, happy@0.6:4.2") == (("sad", 0.0, 1.0), ("happy", 4.2, 0.6))
    s = GenerateSettings(emotion_keys="Sad:0,happy:2")
    assert s.emotion_keys == (("sad", 0.0, 1.0), ("happy", 2.0, 1.0)) and s.keyed
    assert GenerateSettings.from_wire(s.to_wire()) == s
    for bad, text in (("sad:1,happy:0.5", "increasing time"), ("bored:0", "unknown emotion"),
                      ("sad@3:0", "intensity"), ("sad", "label:seconds"), ("sad:soon", "numbers"),
                      ([["sad", -1]], ">= 0")):
        with pytest.raises(ProtocolError, match=text):
            GenerateSettings(emotion_keys=bad)
    w, i = emotion_track(GenerateSettings(emotion_keys="sad:0,happy@0.5:2"), 100, 25.0)
    assert np.allclose(w.sum(1), 1) and w[0].argmax() == 6 and w[-1].argmax() == 5
    assert i[0] == 1.0 and i[-1] == 0.5 and np.abs(np.diff(i)).max() < 0.05  # smooth, no jump


@pytest.fixture(scope="module")
def line():
    audio = load_audio(SPEECH).samples
    return np.tile(audio, 2)  # ~10 s


@pytest.fixture(scope="module")
def gen():
    return load_generator(device="cpu")


def test_a_line_that_starts_sad_and_ends_happy(gen, line):
    seconds = len(line) / 16000
    keyed = gen.generate(line, GenerateSettings(emotion_keys=f"sad:0,happy:{seconds / 2:.2f}", takes=2, seed=3,
                                                phone_guidance=0.0))
    plain = gen.generate(line, GenerateSettings(emotion="sad", takes=2, seed=3, phone_guidance=0.0))
    sad = plain[0].expression
    happy = gen.generate(line, GenerateSettings(emotion="happy", takes=1, seed=3, phone_guidance=0.0))[0].expression
    face = np.setdiff1d(np.arange(64), GUIDED_INDEX)  # what the emotion shows beside speech
    e = keyed[0].expression
    n = len(e)
    first, last = e[: n // 3, face].mean(0), e[-n // 3:, face].mean(0)
    to = lambda x, ref: np.linalg.norm(x - ref[:, face].mean(0))  # noqa: E731
    assert to(first, sad) < to(first, happy) and to(last, happy) < to(last, sad)
    # no jump at the key: the largest frame step near it is within 1.5x the 99th percentile elsewhere
    steps = np.abs(np.diff(e, axis=0)).max(1)
    k = int(seconds / 2 * 25)
    elsewhere = np.r_[steps[: k - 15], steps[k + 15:]]
    assert steps[k - 15: k + 15].max() <= 1.5 * np.percentile(elsewhere, 99)
    # the lips keep following the speech through the change, and takes still differ
    mouth = lambda x: x[:, GUIDED_INDEX].sum(1)  # noqa: E731
    assert np.corrcoef(mouth(e), mouth(sad))[0, 1] > 0.5 and np.corrcoef(mouth(e), mouth(happy))[0, 1] > 0.5
    # (as much as takes of one emotion do: keys do not collapse a take's own noise)
    differ = np.abs(keyed[0].expression - keyed[1].expression).mean()
    assert differ > 0.004 and differ > 0.7 * np.abs(plain[0].expression - plain[1].expression).mean()


def test_cli_keys_land_in_the_take_file(tmp_path):
    from flowvq.cli import main as cli

    assert cli(["generate", str(SPEECH), "--emotion", "angry:0,neutral@0.5:2", "--takes", "1",
                "--phone-guidance", "0", "-o", str(tmp_path), "-q"]) == 0
    take = Take.load(tmp_path / "take_1.npz")
    assert take.settings.emotion_keys == (("angry", 0.0, 1.0), ("neutral", 2.0, 0.5))
    assert take.settings.emotion == "angry"


def test_no_blink_inside_an_emotion_change():
    from flowvq.generate.blinks import take_lids

    audio = load_audio(SPEECH).samples
    audio = np.tile(audio, 6)  # ~30 s: several blinks per take
    n = int(len(audio) / 16000 * 25)
    free = take_lids(audio, 0, n, 25.0, 1, 4)
    kept = take_lids(audio, 0, n, 25.0, 1, 4, clear=((9.0, 11.0),))
    window = slice(int(9.0 * 25), int(11.0 * 25))
    assert free[:, window].max() > 0.5  # without the window some take blinks there
    assert kept[:, window].max() == 0.0
    assert np.array_equal(kept[:, : int(8.5 * 25)], free[:, : int(8.5 * 25)])  # blinks before it are the same
