"""Actor profiles, bpy-free: the selector's items, the `flowvq actor learn` command, its stage.

The backend offers actor profiles by id (hello's `actors`, `flowvq serve --actors DIR`); the
panel's selector lists them, "Default model" first. Learn Actor runs `flowvq actor learn` as a
subprocess; its stage is read cheaply from the profile folder's `work/timing.json` (the CLI
writes each finished stage there), never from its output (it runs with -q).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ._shared import protocol, settings

DEFAULT = "_default"  # the selector's "Default model" (never an actor id: ids start alphanumeric)
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg")
LEARN_STAGES = settings.ACTOR_LEARN_STAGES  # after one track_K per video: the CLI's own list
STAGE_LABELS = {"dataset": "dataset", "finetune": "fine-tune", "estimate": "estimate", "voice": "voice map",
                "select": "select", "fit": "fit", "bank": "bank"}


def offered(hello_actors) -> list[dict]:
    """The actors of a greeting, malformed entries dropped: [{"id", "fit", "sources"}]."""
    out = []
    for a in hello_actors or ():
        if isinstance(a, dict) and isinstance(a.get("id"), str) and a["id"]:
            out.append({"id": a["id"], "fit": a.get("fit") if isinstance(a.get("fit"), dict)
                        else {}, "sources": a.get("sources", 0)})
    return out


def describe(actor: dict) -> str:
    """A tooltip line: the profile's footage and held-out fit."""
    r = (actor.get("fit") or {}).get("lipsync_r") or {}
    sources = actor.get("sources")
    n = len(sources) if isinstance(sources, list) else sources
    fit = f"; held-out lip-sync r {r['actor']}" if isinstance(r, dict) and "actor" in r else ""
    return f"Actor profile '{actor['id']}' ({n} video(s){fit})"


def enum_items(actors: list[dict], chosen: str) -> list[tuple]:
    """The selector's items (identifier, label, description, icon, number): "Default model"
    first, then the offered actors; a chosen id the backend does not offer (any more) stays
    listed as such, so the selection never jumps to another actor."""
    items = [(DEFAULT, "Default model", "The backend's default model (no actor profile)",
              "NONE", 0)]
    ids = []
    for a in actors:
        if a["id"] not in ids:
            ids.append(a["id"])
            items.append((a["id"], a["id"], describe(a), "USER", len(items)))
    if chosen and chosen not in ids:
        items.append((chosen, f"{chosen} (not offered)", f"The connected backend does not offer "
                      f"'{chosen}': check the backend, or pick another", "ERROR", len(items)))
    return items


def check_name(name: str) -> str:
    """An actor name as the contract's safe id (ProtocolError naming the rule if not)."""
    name = name.strip()
    if not name:
        raise protocol.ProtocolError(protocol.BAD_REQUEST, "give the actor a name (letters, digits, "
                                     "'.', '_', '-')")
    return settings.GenerateSettings(actor=name).actor


def is_video(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def learn_command(python: str, videos, actor_dir: str, mouth_bank: bool = True) -> list[str]:
    """The same `flowvq` the local backend runs (`python -m flowvq`), quiet: errors only; `videos`: one
    path or several (one person's recordings); without the mouth bank the profile is a few MB to share
    (dubs then take the mouth from the shot)."""
    videos = [videos] if isinstance(videos, str) else list(videos)
    return [python, "-m", "flowvq", "actor", "learn", *videos, "-o", actor_dir, "-q"] + (
        [] if mouth_bank else ["--no-mouth-bank"])


def learn_stage(actor_dir: str, videos: int = 1) -> tuple[str, float]:
    """(the stage running now, share of stages done) from `work/timing.json` (cheap: one small
    file; missing or half-written reads as the start)."""
    order = [f"track_{k}" for k in range(videos)] + list(LEARN_STAGES)
    try:
        done = json.loads((Path(actor_dir) / "work" / "timing.json").read_text())
    except (OSError, ValueError):
        done = {}
    if (Path(actor_dir) / "actor.json").exists():
        return "done", 1.0
    for i, stage in enumerate(order):
        if stage not in done:
            label = (f"track {i + 1}/{videos}" if stage.startswith("track_") and videos > 1
                     else "track" if stage.startswith("track_") else STAGE_LABELS[stage])
            return label, i / len(order)
    return "finishing", 1.0


def elapsed(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def error_line(stderr_tail: list[str]) -> str:
    """The CLI's refusal: its last `error:` line without the prefix ("" if none)."""
    for line in reversed(stderr_tail):
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    return ""


def learned_summary(actor_dir: str, started: float) -> str:
    """What a finished learn says: the id and the held-out fit from the written actor.json."""
    try:
        doc = json.loads((Path(actor_dir) / "actor.json").read_text())
    except (OSError, ValueError):
        return f"learned an actor into {actor_dir} in {elapsed(time.monotonic() - started)}"
    return (f"learned actor '{doc.get('id')}' into {actor_dir} in "
            f"{elapsed(time.monotonic() - started)}{fit_text(doc.get('fit'))}")


def fit_text(fit) -> str:
    """A profile's measured fit (actor.json's, or a learn_actor result's) as the report's tail."""
    r = (fit or {}).get("lipsync_r") or {}
    return f"; held-out lip-sync r {r.get('actor')} (default model {r.get('default')})" if r else ""
