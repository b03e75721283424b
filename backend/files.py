"""Files the product writes: JSON sidecars atomically (a reader, or a re-run after a crash, never
sees half a file) and the sha256 of a user's file (read in 1 MiB blocks: shots are gigabytes)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def write_json(path, obj, indent: int = 1) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=indent)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
