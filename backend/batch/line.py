"""One manifest line, run on whichever node got it: exactly what `flowvq generate` (and
`flowvq render` for take 1) write, then OUT/<id>/done.json, atomically, last.

No Ray import: the same function runs in a Ray actor, in a test, or in a plain loop. The product's
functions stay pure (jobs.generate: request in, takes out); files are written here, with
`Take.save` and `write_plates`, like the CLI does.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from flowvq_shared.protocol import ProtocolError

from .. import files
from ..errors import FlowVQError
from .manifest import Line

DONE = "done.json"
STATE_DIR = ".batch"  # OUT/.batch/<id>.attempts: how often a line was started (worker losses)
# Test-only hook: "<id>:<marker file>": the worker running line <id> kills its own process once
# (when the marker is absent), as a lost node would. Never set in production.
KILL_ONCE_ENV = "FLOWVQ_BATCH_TEST_KILL_ONCE"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, obj) -> None:
    """Atomic (flowvq.files.write_json)."""
    files.write_json(path, obj)


def read_done(out: Path, line_id: str) -> dict | None:
    try:
        return json.loads((Path(out) / line_id / DONE).read_text())
    except (OSError, ValueError):
        return None


def clear_outputs(d: Path) -> None:
    """Remove what an earlier, unfinished (or changed) run of this line left: only our own files."""
    if not d.is_dir():
        return
    for p in d.iterdir():
        name = p.name
        if p.is_file() and (name == DONE or (name.startswith("take_") and name.endswith((".npz", ".csv")))
                            or name.startswith(f".{DONE}.")):
            p.unlink()
    if (d / "plates").is_dir():
        shutil.rmtree(d / "plates")


def node_ip() -> str:
    try:
        import ray

        if ray.is_initialized():
            return ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - outside Ray: the host's name is what we have
        pass
    return socket.gethostname()


def _count_attempt(out: Path, line_id: str) -> int:
    state = out / STATE_DIR
    state.mkdir(exist_ok=True)
    p = state / f"{line_id}.attempts"
    try:
        n = int(p.read_text().strip() or 0) + 1
    except (OSError, ValueError):
        n = 1
    p.write_text(f"{n}\n")
    return n


def _test_kill_hook(line_id: str) -> None:
    spec = os.environ.get(KILL_ONCE_ENV)
    if not spec or ":" not in spec:
        return
    target, marker = spec.split(":", 1)
    if target == line_id and not os.path.exists(marker):
        Path(marker).write_text(f"killed pid {os.getpid()}\n")
        os._exit(1)  # no cleanup, no exception: the worker process is simply gone


def run_line(models, line: Line, out: str | Path) -> dict:
    """Generate (and render) one line into OUT/<id>/; returns its result (never raises for a line
    that fails on its own input: the error goes in the result, and the batch goes on)."""
    from .. import jobs
    from ..audio import load_audio

    out = Path(out)
    d = out / line.id
    t0 = time.perf_counter()
    attempt = _count_attempt(out, line.id)
    result = {"id": line.id, "node_ip": node_ip(), "attempts": attempt, "pid": os.getpid()}
    try:
        clear_outputs(d)
        d.mkdir(parents=True, exist_ok=True)
        _test_kill_hook(line.id)
        audio = load_audio(line.audio)
        takes = jobs.generate(models, audio, line.generate_settings)
        files = [take.save(d).name for take in takes]
        plates = None
        if line.portrait:
            from ..render import write_plates

            manifest = write_plates(str(d / "take_1.npz"), line.portrait, d / "plates", fmt="png")
            plates = {"frames": manifest["frames"], "dir": "plates"}
        seconds = round(time.perf_counter() - t0, 3)
        write_json(d / DONE, {
            "id": line.id, "spec": line.spec(), "takes": files, "plates": plates,
            "audio_sha256": audio.sha256, "seconds": seconds, "node_ip": result["node_ip"],
            "attempts": attempt, "finished": now_iso()})
        result.update(status="done", error=None, seconds=seconds, takes=files)
    except (FlowVQError, ProtocolError) as e:
        result.update(status="failed", error=e.message, seconds=round(time.perf_counter() - t0, 3))
    except Exception as e:  # noqa: BLE001 - one line's bug must not stop the batch
        result.update(status="failed", error=f"{type(e).__name__}: {e}",
                      seconds=round(time.perf_counter() - t0, 3))
    if result["status"] == "failed" and d.is_dir() and not any(d.iterdir()):
        d.rmdir()  # nothing was written: no empty folder beside the finished lines
    return result
