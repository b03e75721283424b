"""Run a manifest on Ray: validate, skip what is finished, dispatch the rest to a WorkerPool,
keep OUT/batch.json current (atomically) after every line.

Without an address a local Ray is started for the batch, on loopback (127.0.0.2), with no
dashboard, and stopped at the end; with one, the driver connects to that cluster and leaves it
running. Lines already finished (OUT/<id>/done.json, same audio, settings and portrait) are
skipped without starting Ray at all.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from ..errors import BadRequest
from .line import DONE, now_iso, read_done, write_json
from .manifest import Line, read_manifest

LOCAL_NODE_IP = "127.0.0.2"  # loopback: a batch's own Ray is reachable from this machine only
BATCH_JSON = "batch.json"
LOCAL_OBJECT_STORE = 256 * 1024 * 1024  # results are small (file names, errors)
DEFAULT_LINE_TIMEOUT = 7200.0


def plan(lines: list[Line], out: Path) -> tuple[list[dict], list[Line]]:
    """Per-line records (skipped or pending) and the lines still to run."""
    records, todo = [], []
    for line in lines:
        done = read_done(out, line.id)
        rec = {"id": line.id, "line": line.number, "status": "pending", "error": None,
               "seconds": None, "node_ip": None, "attempts": 0}
        if done is not None and done.get("spec") == line.spec():
            rec.update(status="skipped", seconds=done.get("seconds"), node_ip=done.get("node_ip"),
                       attempts=done.get("attempts", 1), note=f"finished earlier ({DONE})")
        else:
            if done is not None:
                rec["note"] = "the manifest line changed since it finished: run again"
            todo.append(line)
        records.append(rec)
    return records, todo


def _summary(records: list[dict]) -> dict:
    out = {"done": 0, "failed": 0, "skipped": 0, "pending": 0}
    for r in records:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def start_ray(address: str | None, cpus: int | None = None):
    """Connect to `address`, or start a local Ray for this batch on loopback; returns a label."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
    # Ray starts its workers at nice 15: on a machine where anything else runs (Blender playing back),
    # the batch would all but stop. A local Ray started here runs them at the user's own priority.
    os.environ.setdefault("RAY_worker_niceness", "0")
    common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    if address:
        ray.init(address=address, **common)
        return address
    ray.init(address="local", _node_ip_address=LOCAL_NODE_IP, num_cpus=cpus,
             object_store_memory=LOCAL_OBJECT_STORE, **common)
    return f"local ({LOCAL_NODE_IP})"


def run_batch(manifest: str | Path, out: str | Path, address: str | None = None,
              cpus_per_line: float = 1, checkpoint: str | None = None, device: str | None = None,
              line_timeout: float | None = DEFAULT_LINE_TIMEOUT, quiet: bool = False,
              max_workers: int | None = None) -> dict:
    """The whole batch; returns the batch record (also in OUT/batch.json)."""
    from tqdm import tqdm

    if not cpus_per_line > 0:
        raise BadRequest("--cpus-per-line must be more than 0")
    lines = read_manifest(manifest)
    out = Path(out).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadRequest(f"cannot create the output folder {out}: {e}") from None
    if not os.access(out, os.W_OK):
        raise BadRequest(f"the output folder {out} is not writable")
    records, todo = plan(lines, out)
    by_id = {r["id"]: r for r in records}
    t0 = time.perf_counter()
    batch = {"format": 1, "manifest": str(Path(manifest).resolve()), "out": str(out),
             "address": None, "cpus_per_line": cpus_per_line, "workers": 0, "nodes": [],
             "started": now_iso(), "finished": None, "seconds": None,
             "summary": _summary(records), "lines": records}

    def save() -> None:
        batch["summary"] = _summary(records)
        batch["seconds"] = round(time.perf_counter() - t0, 3)
        write_json(out / BATCH_JSON, batch)

    save()
    if todo:
        import ray

        from .pool import WorkerPool, local_cpus

        pool = None
        try:
            batch["address"] = start_ray(address, None if address else local_cpus())
            size = WorkerPool.capacity(cpus_per_line)
            size = min(size, len(todo), max_workers or size)
            pool = WorkerPool(size, cpus_per_worker=cpus_per_line, checkpoint=checkpoint, device=device)
            batch["workers"] = size
            save()
            with tqdm(total=len(todo), desc="batch", unit="line", disable=quiet, file=sys.stderr) as bar:
                for line, result in pool.map_unordered("run_line", todo, str(out), timeout=line_timeout):
                    rec = by_id[line.id]
                    if isinstance(result, dict):
                        rec.update({k: result.get(k) for k in ("status", "error", "seconds", "node_ip",
                                                               "attempts")})
                    else:  # the worker was lost more often than Ray retries, or timed out
                        rec.update(status="failed", error=_lost(result))
                        rec["attempts"] = _attempts(out, line.id)
                    if rec.get("node_ip") and rec["node_ip"] not in batch["nodes"]:
                        batch["nodes"].append(rec["node_ip"])
                    save()
                    bar.set_postfix_str(f"{line.id} {rec['status']}", refresh=False)
                    bar.update(1)
            batch["replaced_workers"] = pool.replaced
        finally:
            if pool is not None:
                pool.shutdown()
            ray.shutdown()  # local: stops it; --address: disconnects, the cluster stays
    batch["finished"] = now_iso()
    save()
    return batch


def _lost(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return str(exc)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"worker lost ({type(exc).__name__}), after Ray's retries: {first}"[:500]


def _attempts(out: Path, line_id: str) -> int:
    try:
        return int((out / ".batch" / f"{line_id}.attempts").read_text().strip())
    except (OSError, ValueError):
        return 0
