"""`flowvq emotion learn`: labelled real clips -> an FCG checkpoint whose emotions are theirs."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import BadRequest
from ..files import sha256_file
from .real import collect, real_offsets


def tracked(path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, float]:
    """(expression (T, 64), fps) from the project's tracker, cached per video and tracker version;
    only the first max_seconds are kept (the rest stays unseen, e.g. for a held-out check)."""
    from ..tracker.cache import tracked_expression

    exp, fps = tracked_expression(Path(path))
    if max_seconds is not None:
        exp = exp[: max(1, int(round(max_seconds * fps)))]
    return exp, fps


def learn_emotions(inputs, out, labels=None, person: str | None = None, base=None,
                   max_seconds: float | None = None, progress: bool = True, log=print) -> dict:
    """-> the checkpoint's `real_emotions` meta entry; the checkpoint is written atomically to `out`."""
    from tqdm import tqdm

    from ..fcg.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint
    from .adapt import adapt

    out = Path(out)
    if out.is_dir():
        raise BadRequest(f"-o {out}: a folder; give the checkpoint file to write (e.g. {out / 'fcg_emotions.pt'})")
    if max_seconds is not None and not max_seconds > 0:
        raise BadRequest(f"--max-seconds {max_seconds}: must be > 0")
    clips = collect(inputs, labels, person)
    base_path = Path(base) if base else DEFAULT_CHECKPOINT
    model, meta, _ = load_checkpoint(base_path)  # a bad base fails before the slow part
    t0 = time.time()
    curves, sources = [], []
    for clip in tqdm(clips, desc="track", unit="clip", disable=not progress, dynamic_ncols=True, leave=False):
        exp, fps = tracked(clip.path, max_seconds)
        curves.append((clip, exp))
        sources.append({"name": clip.path.name, "sha256": sha256_file(clip.path), "label": clip.label,
                        "person": clip.person, "frames": int(len(exp)), "fps": fps})
    offsets = real_offsets(curves)
    entry = adapt(model, offsets, meta)
    entry.update(sources=sources, max_seconds=max_seconds, seconds=round(time.time() - t0, 1))
    meta = {k: v for k, v in meta.items() if k != "real_emotions"}
    meta["real_emotions"] = entry
    save_checkpoint(out, model, meta, train_state=None, half=True)
    for e, v in sorted(offsets.offsets.items()):
        log(f"{e:10s} |offset| {np.linalg.norm(v):.3f} from {', '.join(offsets.persons[e])} "
            f"({offsets.frames[e]} frames)")
    log(f"wrote {out}")
    return entry
