"""Emotions learned from real faces (docs/emotion.md).

`flowvq emotion learn CLIPS... -o FCG.pt` (learn.py): labelled clips of real people -> their tracked
faces -> per emotion, where the face sits relative to the same person's neutral (real.py) -> written
into an FCG checkpoint's class-conditional parameters (adapt.py). The shipped checkpoint's emotions
come from this command run over the MEAD actor in ../shared/data/emotion_3dmm/. Imported lazily so
`flowvq --help` does not load torch."""
from __future__ import annotations
