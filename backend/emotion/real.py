"""Labelled clips of real people -> speaker-normalised emotion offsets.

Each person's emotion mean minus the same person's neutral mean (a face's own build and the
tracker's reading of it cancel); persons are then averaged with equal weight, so one long clip
does not outvote another person."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowvq_shared.channels import EMOTIONS, N_EXPRESSION

from ..errors import BadRequest

REFERENCE = "neutral"
LEARNABLE = tuple(e for e in EMOTIONS if e != "talking")  # talking: the unlabelled default, kept as trained
MIN_FRAMES = 10


@dataclass(frozen=True)
class LabelledClip:
    path: Path
    label: str
    person: str


def label_from_name(path: Path) -> str | None:
    """The one emotion word in the file's or its folder's name (MEAD: W009_front_happy_level3_001)."""
    for part in (path.stem, path.parent.name):
        found = {w for w in re.split(r"[^a-z]+", part.lower()) if w in LEARNABLE}
        if len(found) == 1:
            return found.pop()
    return None


def collect(inputs, labels=None, person: str | None = None) -> list[LabelledClip]:
    """Videos and folders -> labelled clips. A folder is searched recursively; a clip's label is the
    matching --label (one per video, in order) or the emotion word in its name or folder's; its
    person is --person, else the folder given (PERSON/EMOTION/clip.mp4 or PERSON/clip_happy.mp4)."""
    from ..tracker.frames import VIDEO_SUFFIXES  # here: the generator imports this module, not the tracker

    paths: list[tuple[Path, str]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            vids = sorted(v for v in p.rglob("*") if v.suffix.lower() in VIDEO_SUFFIXES and v.is_file())
            if not vids:
                raise BadRequest(f"{p}: no videos in this folder ({', '.join(sorted(VIDEO_SUFFIXES))})")
            for v in vids:
                rel = v.relative_to(p).parts
                # PERSON/EMOTION/clip.mp4 inside the folder: the first level names the person
                who = rel[0] if len(rel) >= 3 or (len(rel) == 2 and label_from_name(Path(rel[0])) is None) else p.name
                paths.append((v, who))
        elif p.is_file():
            paths.append((p, p.parent.name))
        else:
            raise BadRequest(f"not found: {p}")
    if labels:
        if len(labels) != len(paths):
            raise BadRequest(f"{len(labels)} --label for {len(paths)} videos: give one per video, in order, "
                             "or none (labels from the file names)")
    out = []
    for k, (path, who) in enumerate(paths):
        label = (labels[k].strip().lower() if labels else label_from_name(path))
        if label is None:
            raise BadRequest(f"{path.name}: no emotion in its name; give --label ({', '.join(LEARNABLE)})")
        if label not in LEARNABLE:
            raise BadRequest(f"{path.name}: unknown emotion {label!r} (known: {', '.join(LEARNABLE)})")
        out.append(LabelledClip(path, label, person or who))
    persons = {c.person for c in out}
    for who in sorted(persons):
        mine = {c.label for c in out if c.person == who}
        if REFERENCE not in mine:
            raise BadRequest(f"person {who!r} has no neutral clip: emotions are measured from the same "
                             "person's neutral face (add one, labelled neutral)")
    if not {c.label for c in out} - {REFERENCE}:
        raise BadRequest("only neutral clips: give at least one clip of another emotion")
    return out


@dataclass
class RealOffsets:
    """Per emotion: the mean speaker-normalised offset (64,), and the persons and frames behind it;
    `neutral`: the persons' neutral mean (what a reference face of unknown neutral is read against)."""
    offsets: dict[str, np.ndarray]
    persons: dict[str, list[str]]
    frames: dict[str, int]
    neutral: np.ndarray | None = None

    def to_meta(self) -> dict:
        doc = {"offsets": {e: np.round(v, 5).tolist() for e, v in self.offsets.items()},
               "persons": self.persons, "frames": self.frames}
        if self.neutral is not None:
            doc["neutral_mean"] = np.round(self.neutral, 5).tolist()
        return doc

    @classmethod
    def from_meta(cls, doc: dict) -> "RealOffsets":
        off = {e: np.asarray(v, np.float32) for e, v in doc["offsets"].items()}
        for e, v in off.items():
            if e not in LEARNABLE or v.shape != (N_EXPRESSION,):
                raise BadRequest(f"real emotion offsets: bad entry {e!r} of shape {v.shape}")
        neutral = np.asarray(doc["neutral_mean"], np.float32) if "neutral_mean" in doc else None
        if neutral is not None and neutral.shape != (N_EXPRESSION,):
            raise BadRequest(f"real emotion offsets: neutral_mean of shape {neutral.shape}")
        return cls(off, dict(doc.get("persons", {})), dict(doc.get("frames", {})), neutral)


def checkpoint_offsets(meta: dict) -> RealOffsets | None:
    """The offsets an FCG checkpoint's emotions were learned from (adapt.py), None when its emotions are
    the corpus's own."""
    doc = meta.get("real_emotions")
    return RealOffsets.from_meta(doc) if doc else None


def real_offsets(curves: list[tuple[LabelledClip, np.ndarray]]) -> RealOffsets:
    """[(clip, expression (T, 64))] -> per emotion, persons averaged: mean(emotion) - mean(neutral)."""
    by: dict[tuple[str, str], list[np.ndarray]] = {}
    for clip, exp in curves:
        if len(exp) < MIN_FRAMES:
            raise BadRequest(f"{clip.path.name}: {len(exp)} tracked frames; at least {MIN_FRAMES} are needed")
        by.setdefault((clip.person, clip.label), []).append(np.asarray(exp, np.float64))
    offsets, persons, frames = {}, {}, {}
    for emo in LEARNABLE:
        if emo == REFERENCE:
            continue
        per = []
        for (who, label), xs in sorted(by.items()):
            if label != emo:
                continue
            neutral = np.mean([x.mean(0) for x in by[(who, REFERENCE)]], 0)
            per.append(np.mean([x.mean(0) for x in xs], 0) - neutral)
            persons.setdefault(emo, []).append(who)
            frames[emo] = frames.get(emo, 0) + sum(len(x) for x in xs)
        if per:
            offsets[emo] = np.mean(per, 0).astype(np.float32)
    neutral = np.mean([np.mean([x.mean(0) for x in xs], 0) for (_, label), xs in sorted(by.items())
                       if label == REFERENCE], 0).astype(np.float32)
    return RealOffsets(offsets, persons, frames, neutral)
