"""Festival voices for the corpus: speech synthesised from recordings of real people.

espeak-ng is a formant synthesiser; a model trained only on it meets real voices as strangers.
Festival's diphone voices (kal, ked: concatenated recordings of real speakers) and its HTS voice
(cmu_us_slt: a statistical model of a real speaker) bring real vocal tracts into the corpus. The
Segment relation gives every phone's end time in the very audio produced, so, as with espeak-ng,
no recogniser is needed. Festival runs as a subprocess (`festival -b`), one call per utterance.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ...errors import BadRequest
from .speech import Speech

# English voices Debian packages (festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts)
VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
_TIMEOUT_S = 60


@dataclass(frozen=True)
class FestivalVoice:
    name: str  # one of VOICES
    stretch: float = 1.0  # Duration_Stretch (> 1: slower); the HTS voice ignores it

    @property
    def label(self) -> str:
        return f"festival:{self.name} x{self.stretch:.2f}"


@lru_cache(maxsize=1)
def available_voices() -> tuple[str, ...]:
    """The VOICES installed here (empty when festival itself is missing)."""
    if shutil.which("festival") is None:
        return ()
    roots = [Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices")]
    found = {p.name for r in roots if r.is_dir() for p in r.glob("*/*") if p.is_dir()}
    return tuple(v for v in VOICES if v in found)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synthesize_festival(text: str, voice: FestivalVoice) -> Speech:
    """Speak `text` with a festival voice: audio at the voice's rate and (phone, start, end) in
    festival's radio phone set (ARPAbet in lower case, "pau" for pauses)."""
    if voice.name not in VOICES:
        raise BadRequest(f"unknown festival voice {voice.name!r}; known: {', '.join(VOICES)}")
    if voice.name not in available_voices():
        raise BadRequest(f"festival voice {voice.name} is not installed (make setup installs festival and its "
                         "English voices)")
    with tempfile.TemporaryDirectory(prefix="flowvq_festival_") as tmp:
        wav = Path(tmp) / "speech.wav"
        script = Path(tmp) / "say.scm"
        script.write_text(
            f"(voice_{voice.name})\n"
            f"(Parameter.set 'Duration_Stretch {voice.stretch:.4f})\n"
            f"(set! utt (utt.synth (Utterance Text {_scheme_string(text)})))\n"
            f"(utt.save.wave utt {_scheme_string(str(wav))} 'riff)\n"
            "(mapcar (lambda (s) (format t \"%s %f\\n\" (item.name s) (item.feat s \"end\")))"
            " (utt.relation.items utt 'Segment))\n")
        try:
            run = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True,
                                 timeout=_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BadRequest(f"festival took over {_TIMEOUT_S} s on one utterance") from None
        if run.returncode != 0 or not wav.exists():
            raise BadRequest(f"festival failed: {(run.stderr or run.stdout).strip()[-300:]}")
        audio, sr = _read_wav(wav)
    phones, start = [], 0.0
    for line in run.stdout.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            end = float(parts[1])
        except ValueError:
            continue
        end = min(end, audio.size / sr)
        if end > start:
            phones.append((parts[0], start, end))
            start = end
    if not phones:
        raise BadRequest("festival produced no phone timings")
    return Speech(audio=audio, sample_rate=int(sr), phones=phones)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Festival's 16-bit RIFF through the stdlib: libsndfile in a worker forked from the corpus
    builder (whose main thread writes with it) can deadlock on a lock held at fork time."""
    import wave

    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise BadRequest(f"festival wrote {8 * w.getsampwidth()}-bit audio, expected 16-bit")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        return (pcm.astype(np.float32) / 32768.0).mean(1), w.getframerate()


def speed_perturb(speech: Speech, factor: float) -> Speech:
    """Play `factor` times faster (Kaldi-style speed perturbation): tempo, pitch and formants all
    scale, so one recorded voice stands in for shorter and longer vocal tracts. Timings follow."""
    from ..dataset import resample_audio

    if not 0.5 < factor < 2.0:
        raise BadRequest(f"speed factor must be in (0.5, 2), got {factor}")
    # reading the samples as if recorded at sr*factor plays them factor times faster
    audio = resample_audio(speech.audio, int(round(speech.sample_rate * factor)), speech.sample_rate)
    return Speech(audio=audio.astype(np.float32), sample_rate=speech.sample_rate,
                  phones=[(p, s / factor, e / factor) for p, s, e in speech.phones])
