"""espeak-ng through its C library: audio plus the synthesiser's own phoneme events.

The phoneme events give each phone's start sample in the very audio produced, so the corpus
needs no recogniser to know its timings. libespeak-ng keeps internal state between utterances
(its output depends on what it spoke before), so the builder calls `synthesize` once per fresh
worker process; that keeps every utterance reproducible whatever the scheduling.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from ...errors import BadRequest

_LIB_NAME = "libespeak-ng.so.1"
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED, _EVENT_END, _EVENT_PHONEME, _EVENT_MSG_TERMINATED = 0, 5, 7, 6
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7


class _Event(ctypes.Structure):  # espeak_EVENT from speak_lib.h
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Voice:
    name: str  # espeak voice + variant, e.g. "en-us+f3"
    rate: int  # words per minute (espeak -s)
    pitch: int  # 0..99 (espeak -p)
    pitch_range: int = 50  # 0..99
    word_gap: int = 0  # extra pause between words, 10 ms units

    @property
    def label(self) -> str:
        return f"{self.name} s{self.rate} p{self.pitch}"


@dataclass(frozen=True)
class Speech:
    audio: np.ndarray  # (N,) float32 at sample_rate
    sample_rate: int
    phones: list[tuple[str, float, float]]  # (espeak mnemonic, start s, end s), "_" = pause


class _Espeak:
    def __init__(self):
        try:
            self.lib = ctypes.CDLL(_LIB_NAME)
        except OSError as e:
            raise BadRequest(f"espeak-ng library not found ({e}); install the espeak-ng package") from None
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                                      _INITIALIZE_PHONEME_EVENTS)
        if self.sample_rate <= 0:
            raise BadRequest("espeak-ng failed to initialise")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, bytes]] = []
        self._callback = _CALLBACK(self._on_audio)  # kept alive as long as the library holds it
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]

    def _on_audio(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            self._events.append((e.type, e.sample, bytes(e.id) if e.type == _EVENT_PHONEME else b""))
            i += 1
        return 0

    def speak(self, text: str, voice: Voice) -> Speech:
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise BadRequest(f"espeak-ng has no voice {voice.name!r}")
        for param, value in ((_RATE, voice.rate), (_PITCH, voice.pitch), (_RANGE, voice.pitch_range),
                             (_WORDGAP, voice.word_gap), (_VOLUME, 100)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks.clear()
        self._events.clear()
        data = text.encode("utf-8") + b"\0"
        self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        audio = (np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16))
        audio = audio.astype(np.float32) / 32768.0
        sr = float(self.sample_rate)
        marks = [(s, name.decode("utf-8", "replace").rstrip("\0")) for t, s, name in self._events
                 if t == _EVENT_PHONEME]
        phones = []
        for k, (sample, name) in enumerate(marks):
            end = marks[k + 1][0] if k + 1 < len(marks) else audio.size
            if end > sample:  # zero-length events are merged phones
                phones.append((name, sample / sr, min(end, audio.size) / sr))
        return Speech(audio=audio, sample_rate=int(self.sample_rate), phones=phones)


_ENGINE: _Espeak | None = None


def synthesize(text: str, voice: Voice) -> Speech:
    """Speak `text`; call once per process for reproducible audio (see module doc)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Espeak()
    return _ENGINE.speak(text, voice)
