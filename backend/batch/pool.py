"""A pool of Ray actors, each holding one `jobs.Models`: the model loads once per worker, not per
line. Reusable beyond `flowvq batch` (a server could hand it requests: `submit("generate", ...)`).

Each actor is sized by resources (num_cpus, num_gpus), so Ray places as many as the cluster holds.
A worker process that dies mid-call (a node lost, the OOM killer) is restarted by Ray and the call
retried (`max_restarts`, `max_task_retries`); a call that still fails comes back as an error for
that item and the pool replaces the actor, so the other items go on.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Iterable, Iterator

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

MAX_RESTARTS = 3  # per actor: worker processes Ray brings back after a crash
MAX_TASK_RETRIES = 2  # per call: how often a call whose worker died is run again


class GenerateWorker:
    """Lives in a Ray worker process: one Models (lazily loaded, then kept) for every call."""

    def __init__(self, checkpoint: str | None = None, device: str | None = None, threads: int = 0):
        from .. import jobs

        if threads:
            import torch

            torch.set_num_threads(threads)
        self.models = jobs.Models(checkpoint, device)

    def node_ip(self) -> str:
        return ray.util.get_node_ip_address()

    def generate(self, audio, settings_wire: dict, reference_rgb=None) -> list:
        """jobs.generate as it is: an Audio and settings in, Takes out (for a server). `ray.cancel` on
        this call sets Ray's flag; the sampler looks at it every frame (RayCancel)."""
        from flowvq_shared.settings import GenerateSettings

        from .. import jobs

        return jobs.generate(self.models, audio, GenerateSettings.from_wire(settings_wire), reference_rgb,
                             cancel=RayCancel())

    def run_line(self, line, out: str) -> dict:
        """One manifest line into OUT/<id>/ (see line.run_line)."""
        from .line import run_line

        return run_line(self.models, line, out)

    def close(self) -> None:
        self.models.close()


class RayCancel:
    """A cancel flag for jobs.generate inside a Ray actor task: set once `ray.cancel` flagged the task.
    Ray's flag is read on the task's own thread; other threads (PoseFlow's chain) see the latched value."""

    def __init__(self):
        import threading

        self._owner = threading.current_thread()
        self._set = False

    def is_set(self) -> bool:
        import threading

        if not self._set and threading.current_thread() is self._owner:
            self._set = bool(ray.get_runtime_context().is_canceled())
        return self._set

    def set(self) -> None:
        self._set = True


class WorkerPool:
    """`size` GenerateWorker actors of `cpus_per_worker` CPUs (and `gpus_per_worker` GPUs) each.

    Ray must be initialised first. `map_unordered` keeps one call in flight per actor (the next
    item goes to whichever actor finishes first); `submit` queues on the least busy actor.
    """

    def __init__(self, size: int, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                 checkpoint: str | None = None, device: str | None = None,
                 max_restarts: int = MAX_RESTARTS, max_task_retries: int = MAX_TASK_RETRIES):
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        threads = max(1, int(cpus_per_worker)) if cpus_per_worker else 0
        # Native thread pools (OpenMP, OpenBLAS, MKL) sized to the worker's CPUs, set before the
        # worker process starts: left at the machine's core count, two workers sharing a node
        # spin against each other (measured: each line 2x slower; docs/scale.md).
        n = str(threads or 1)
        env = {k: n for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        self._cls = ray.remote(GenerateWorker).options(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=max_restarts,
            max_task_retries=max_task_retries, runtime_env={"env_vars": env})
        self._args = (checkpoint, device, threads)
        self.workers = [self._cls.remote(*self._args) for _ in range(size)]
        self._inflight: dict[Any, int] = {w: 0 for w in self.workers}  # submit(): calls per actor
        self._lock = threading.Lock()
        self.replaced = 0

    @staticmethod
    def capacity(cpus_per_worker: float, gpus_per_worker: float = 0) -> int:
        """How many workers of this size the cluster holds right now (at least 1)."""
        res = ray.cluster_resources()
        n = int(res.get("CPU", 0) // cpus_per_worker) if cpus_per_worker else 1 << 30
        if gpus_per_worker:
            n = min(n, int(res.get("GPU", 0) // gpus_per_worker))
        return max(1, n)

    # ---- one-off calls (a server) ------------------------------------------------------------
    def submit(self, method: str, *args) -> "ray.ObjectRef":
        """Queue `method(*args)` on the least busy worker; the ref is awaitable (asyncio) or ray.get."""
        with self._lock:  # a server submits from several threads
            worker = min(self.workers, key=lambda w: self._inflight.get(w, 0))
            self._inflight[worker] = self._inflight.get(worker, 0) + 1
        ref = getattr(worker, method).remote(*args)

        def _done(_future, w=worker):
            with self._lock:
                self._inflight[w] = max(0, self._inflight.get(w, 1) - 1)

        ref.future().add_done_callback(_done)
        return ref

    # ---- many items (a batch) -----------------------------------------------------------------
    def map_unordered(self, method: str, items: Iterable, *args, timeout: float | None = None,
                      poll: float = 0.5) -> Iterator[tuple[Any, Any]]:
        """Yield (item, result) as calls finish; result is the method's value or the exception
        (RayActorError after Ray's retries, TimeoutError past `timeout` seconds per item)."""
        pending = list(items)[::-1]
        idle = list(self.workers)
        inflight: dict[Any, tuple[Any, Any, float]] = {}
        while pending or inflight:
            while idle and pending:
                worker, item = idle.pop(), pending.pop()
                inflight[getattr(worker, method).remote(item, *args)] = (item, worker, time.monotonic())
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=poll)
            for ref in ready:
                item, worker, _t0 = inflight.pop(ref)
                try:
                    value = ray.get(ref, timeout=60)
                except RayTaskError as e:  # the method raised: the worker is fine
                    value = e
                except (RayActorError, GetTimeoutError, RayError) as e:  # the worker is gone for good
                    value = e
                    worker = self._replace(worker)
                idle.append(worker)
                yield item, value
            if timeout is not None:
                now = time.monotonic()
                for ref, (item, worker, t0) in list(inflight.items()):
                    if now - t0 > timeout:
                        del inflight[ref]
                        idle.append(self._replace(worker))
                        yield item, TimeoutError(f"no result after {timeout:g} s: its worker was stopped")

    def _replace(self, worker):
        """Kill an actor (for good) and start a fresh one in its place."""
        try:
            ray.kill(worker, no_restart=True)
        except Exception:  # noqa: BLE001 - already dead
            pass
        new = self._cls.remote(*self._args)
        self.workers = [new if w is worker else w for w in self.workers]
        self._inflight.pop(worker, None)
        self._inflight[new] = 0
        self.replaced += 1
        return new

    def shutdown(self, timeout: float = 30) -> None:
        """Close every worker's models (bounded), then end the actors."""
        refs = [w.close.remote() for w in self.workers]
        try:
            ray.wait(refs, num_returns=len(refs), timeout=timeout)
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass
        for w in self.workers:
            try:
                ray.kill(w, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self.workers = []
        self._inflight.clear()


def local_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
