"""Dubbing: a filmed shot's mouth moved to a new line, with the actor's own mouth (docs/dubbing.md)."""
from .bank import BankBuilder, MouthBank
from .run import dub_shot, load_curves

__all__ = ["BankBuilder", "MouthBank", "dub_shot", "load_curves"]
