"""Phone labels -> viseme classes, for espeak-ng's phoneme mnemonics and CMU ARPAbet.

A viseme class names the mouth shape a phone needs (visemes.TARGETS gives it in ARKit terms).
Diphthongs become two classes, the glide taking the later part of the phone.
"""
from __future__ import annotations

SILENCE = "sil"

# espeak-ng English phoneme mnemonics (phsource/ph_english), stress marks already stripped.
_ESPEAK = {
    "p": "PBM", "b": "PBM", "m": "PBM", "m-": "PBM",
    "f": "FV", "v": "FV",
    "T": "TH", "D": "TH",
    "t": "TDNL", "d": "TDNL", "n": "TDNL", "l": "TDNL", "t#": "TDNL", "d#": "TDNL", "t2": "TDNL",
    "d2": "TDNL", "*": "TDNL", "n-": "TDNL", "l-": "TDNL", "@L": "TDNL", "l/": "TDNL", "l/2": "TDNL",
    "s": "SZ", "z": "SZ", "z#": "SZ", "z/2": "SZ",
    "S": "SH", "Z": "SH", "tS": "SH", "dZ": "SH",
    "k": "KGH", "g": "KGH", "N": "KGH", "x": "KGH", "h": "KGH", "?": "KGH",
    "r": "R", "r-": "R", "r/": "R", "w": "W", "W": "W", "j": "Y",
    "a": "AE", "aa": "AA", "a2": "AX", "a#": "AX", "A:": "AA", "A@": "AA", "A": "AA", "0": "AO",
    "V": "AX", "O:": "AO", "O": "AO", "O@": "AO", "o@": "OW", "o": "OW",
    "E": "EH", "e": "EH", "e@": "EH", "E2": "EH", "E3": "EH",
    "3": "ER", "3:": "ER", "@": "AX", "@2": "AX", "@5": "AX", "@-": "AX",
    "i": "IY", "i:": "IY", "I": "IY", "I#": "IY", "I2": "IY", "i@": "IY", "i@3": "IY", "IR": "IY",
    "u:": "UW", "U": "UW", "U@": "UW", "u@": "UW", "VR": "ER", "3:r": "ER",
    "aI": ("AA", "IY"), "aI@": ("AA", "IY"), "aI3": ("AA", "IY"), "aU": ("AA", "UW"),
    "aU@": ("AA", "UW"), "eI": ("EH", "IY"), "oU": ("OW", "UW"), "OI": ("AO", "IY"),
}

# CMU ARPAbet (pocketsphinx's en-us model), stress digits stripped.
_ARPABET = {
    "P": "PBM", "B": "PBM", "M": "PBM", "F": "FV", "V": "FV", "TH": "TH", "DH": "TH",
    "T": "TDNL", "D": "TDNL", "N": "TDNL", "L": "TDNL", "S": "SZ", "Z": "SZ",
    "SH": "SH", "ZH": "SH", "CH": "SH", "JH": "SH", "K": "KGH", "G": "KGH", "NG": "KGH",
    "HH": "KGH", "R": "R", "W": "W", "Y": "Y",
    "AA": "AA", "AE": "AE", "AH": "AX", "AO": "AO", "EH": "EH", "ER": "ER", "IH": "IY",
    "IY": "IY", "UH": "UW", "UW": "UW",
    "AW": ("AA", "UW"), "AY": ("AA", "IY"), "EY": ("EH", "IY"), "OW": ("OW", "UW"),
    "OY": ("AO", "IY"),
    # festival's radio phone set adds these
    "AX": "AX", "AXR": "ER", "DX": "TDNL", "EL": "TDNL", "EM": "PBM", "EN": "TDNL", "NX": "TDNL",
    "HV": "KGH",
}

_VOWEL_START = "aAeEiIoOuUV03@"
DIPHTHONG_SPLIT = 0.6  # the first target holds this share of a diphthong's duration


def _classes_espeak(name: str) -> tuple[str, ...]:
    name = name.strip().replace("'", "").replace(",", "")
    if not name or name[0] in "_|":
        return (SILENCE,)
    hit = _ESPEAK.get(name)
    if hit is None and name.rstrip(";") in _ESPEAK:
        hit = _ESPEAK[name.rstrip(";")]
    if hit is None:  # unlisted variants: fall back on the first letters
        hit = _ESPEAK.get(name[:2]) or _ESPEAK.get(name[:1])
    if hit is None:
        hit = "AX" if name[0] in _VOWEL_START else "KGH"
    return hit if isinstance(hit, tuple) else (hit,)


def _classes_arpabet(name: str) -> tuple[str, ...]:
    base = name.strip().upper().rstrip("012")
    if base in ("SIL", "SP", "", "PAU", "H#", "BRTH") or base.startswith("+") or base.startswith("<"):
        return (SILENCE,)
    hit = _ARPABET.get(base, "KGH")
    return hit if isinstance(hit, tuple) else (hit,)


def to_visemes(phones: list[tuple[str, float, float]], alphabet: str) -> list[tuple[str, float, float]]:
    """[(phone, start s, end s)] -> [(viseme class, start, end)], diphthongs split in two."""
    classify = {"espeak": _classes_espeak, "arpabet": _classes_arpabet}[alphabet]
    out = []
    for name, start, end in phones:
        classes = classify(name)
        if len(classes) == 1:
            out.append((classes[0], start, end))
        else:
            mid = start + DIPHTHONG_SPLIT * (end - start)
            out.extend([(classes[0], start, mid), (classes[1], mid, end)])
    return out
