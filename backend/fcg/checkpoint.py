"""Self-describing FCG checkpoints: {"format": 1, "kind": "fcg", "config", "state_dict", "meta"}.

Loaded with torch.load(weights_only=True) (no pickle), the format checked, the model rebuilt from
its config and filled with load_state_dict(strict=True). Training state (optimizer, step) rides in
the same file under "train" so `--resume` continues exactly.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import CheckpointError
from . import DEFAULT_CHECKPOINT  # noqa: F401  re-exported: the trainer and the generator read it here
from .model import FCGConfig, FCGModel

FORMAT = 1
KIND = "fcg"


def save_checkpoint(path: str | Path, model: FCGModel, meta: dict, train_state: dict | None = None,
                    half: bool = False) -> Path:
    """Write atomically. half=True stores float tensors as float16 (the shipped default: half the size)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
             for k, v in model.state_dict().items()}
    doc = {"format": FORMAT, "kind": KIND, "config": model.cfg.to_dict(), "state_dict": state, "meta": dict(meta)}
    if train_state is not None:
        doc["train"] = train_state
    tmp = path.with_name(path.name + ".tmp")
    torch.save(doc, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, device=None) -> tuple[FCGModel, dict, dict | None]:
    """-> (model in eval mode, meta, train state or None); CheckpointError says what is wrong."""
    path = Path(path)
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except Exception as e:  # truncated file, not a torch file, pickled objects refused
        first = (str(e).strip().splitlines() or [""])[0]  # torch's messages run to many lines
        raise CheckpointError(f"cannot read FCG checkpoint {path}: {type(e).__name__}: {first}") \
            from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("kind") != KIND:
        raise CheckpointError(f"{path} is not an FCG checkpoint of format {FORMAT} "
                              f"(format={doc.get('format') if isinstance(doc, dict) else None!r}, "
                              f"kind={doc.get('kind') if isinstance(doc, dict) else None!r})")
    try:
        model = FCGModel(FCGConfig.from_dict(doc["config"]))
        state = {k: v.float() if v.is_floating_point() else v for k, v in doc["state_dict"].items()}
        if "display" not in state and "exp_lo" in state:  # written before displays existed: all zero
            state["display"] = torch.zeros(model.display.shape)
        model.load_state_dict(state, strict=True)
    except (KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"FCG checkpoint {path} does not match the model: {e}") from None
    model.eval()
    if device is not None:
        model.to(device)
    return model, dict(doc.get("meta", {})), doc.get("train")
