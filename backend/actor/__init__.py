"""Actors: a person learned from minutes of their footage (docs/actor.md).

`flowvq actor learn VIDEO... -o ACTOR_DIR` (learn.py) writes a profile folder; `ActorProfile.load`
(profile.py) reads one strictly; `load_actor(dir)` gives an `ActorGenerator` whose `.generate(audio,
settings)` is the pipeline's Generator over the actor's fine-tuned FCG plus their lead, mouth
range and head motion. Imported lazily so `flowvq --help` does not load torch."""
from __future__ import annotations

__all__ = ["ActorError", "ActorGenerator", "ActorProfile", "load_actor", "learn"]


def __getattr__(name):
    if name == "learn":
        from .learn import learn

        return learn
    if name in __all__:
        from . import profile

        return getattr(profile, name)
    raise AttributeError(f"module 'flowvq.actor' has no attribute {name!r}")
