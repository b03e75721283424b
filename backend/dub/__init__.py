"""Dubbing: a filmed shot's mouth moved to a new line, with the actor's own mouth (docs/dubbing.md)."""
from ..render.mouth_bank import BankBuilder, MouthBank, bank_from_videos
from .run import dub_shot, load_curves

__all__ = ["BankBuilder", "MouthBank", "bank_from_videos", "dub_shot", "load_curves"]
