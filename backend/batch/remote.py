"""`flowvq serve --ray ADDR`: the server's generate requests on a pool of Ray actors.

The front door stays the server (TCP, msgpack, hello, progress, cancel, tokens); only the model work
moves: each generate goes to the least busy `GenerateWorker` of a `WorkerPool` (one actor per CPU or GPU
slot, each holding its own models), so several Blender seats share the cluster. Cancel reaches the Ray
task (`ray.cancel`; the worker checks the flag every frame). Progress from a worker does not cross
processes: the server reports the stages it sees (queued, running on a node, done).
"""
from __future__ import annotations

import threading
import time

from flowvq_shared.protocol import ProtocolError

from ..errors import Cancelled, FlowVQError

POLL_S = 0.2  # how often a waiting request looks at its Ray task and at its cancel flag
CANCEL_WAIT_S = 30.0  # how long a cancelled request waits for the worker to stop


class RemoteGenerate:
    def __init__(self, address: str, workers: int = 0, cpus_per_worker: float = 1, gpus_per_worker: float = 0,
                 checkpoint: str | None = None, device: str | None = None):
        self.address = address
        self.size = workers
        self.cpus, self.gpus = cpus_per_worker, gpus_per_worker
        self.checkpoint, self.device = checkpoint, device
        self.pool = None
        self.error: str | None = None
        self.ready = threading.Event()  # set when connected (or failed: see `error`)

    def connect(self) -> None:
        """Join the cluster and start the pool (seconds: run it off the event loop)."""
        try:
            import ray

            from .pool import WorkerPool

            ray.init(address=self.address, log_to_driver=False, include_dashboard=False,
                     configure_logging=False)
            size = self.size or WorkerPool.capacity(self.cpus, self.gpus)
            self.pool = WorkerPool(size, cpus_per_worker=self.cpus, gpus_per_worker=self.gpus,
                                   checkpoint=self.checkpoint, device=self.device)
            ray.get([w.node_ip.remote() for w in self.pool.workers], timeout=300)  # the actors are up
        except Exception as e:  # noqa: BLE001 - the server keeps serving and says why in hello
            self.error = f"could not use the Ray cluster at {self.address}: {type(e).__name__}: {e}"
        finally:
            self.ready.set()

    def info(self) -> dict:
        out = {"address": self.address, "connected": self.pool is not None, "error": self.error}
        if self.pool is not None:
            import ray

            out["workers"] = len(self.pool.workers)
            out["nodes"] = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")})
            out["resources"] = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")}
        return out

    def generate(self, audio, settings, reference_rgb, progress, cancel: threading.Event) -> list:
        """jobs.generate on a worker; waits in POLL_S steps so a cancel reaches the Ray task at once."""
        import ray
        from ray.exceptions import RayTaskError, TaskCancelledError

        while not self.ready.wait(POLL_S):
            progress(0.0, "connecting to the Ray cluster")
        if self.pool is None:
            raise FlowVQError(self.error or "no Ray cluster", code="not_implemented")
        ref = self.pool.submit("generate", audio, settings.to_wire(), reference_rgb)
        progress(0.0, "queued on the cluster")
        t0 = time.monotonic()
        while True:
            done, _ = ray.wait([ref], timeout=POLL_S)
            if done:
                break
            if cancel.is_set():
                ray.cancel(ref)
                # the worker sees the flag within a frame: wait for it, so "cancelled" means stopped
                stopped = bool(ray.wait([ref], timeout=CANCEL_WAIT_S)[0])
                raise Cancelled("cancelled" + ("" if stopped else f" (the cluster's task did not stop "
                                                                  f"within {CANCEL_WAIT_S:g} s)"))
            progress(0.0, f"generating on the cluster ({time.monotonic() - t0:.0f} s)")
        try:
            return ray.get(ref)
        except TaskCancelledError:
            raise Cancelled("cancelled") from None
        except RayTaskError as e:  # the worker raised: a user error comes back as itself
            cause = e.cause if isinstance(getattr(e, "cause", None), BaseException) else None
            if isinstance(cause, ProtocolError):  # FlowVQError and Cancelled are ProtocolErrors
                raise cause from None
            raise

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(timeout=10)
            self.pool = None
