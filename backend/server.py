"""The backend server: asyncio TCP, msgpack frames, one model worker, zeroconf advert.

Connections are handled concurrently on the event loop; model work runs on a single worker
thread (one GPU/CPU, jobs serialised) and reports progress back through the loop. A framing
error closes only its own connection; a bad message gets an `error` and the connection stays.
A client that disconnects cancels its jobs. Nothing here opens a path a client sent: audio and
images travel as bytes.

Starts cold: nothing heavy (torch, librosa, cv2, dlib) is imported before `listening on`, and the
greeting is built from what is known at that moment. A background thread then detects the device
(importing torch) and warms the FCG (`--no-warm` leaves it to the first generate); `hello` lists
what is still loading, and a generate that arrives meanwhile waits with `progress` messages
("loading the FCG") instead of failing.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import ipaddress
import logging
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flowvq_shared import messages as m
from flowvq_shared import protocol as p
from flowvq_shared.channels import EXPRESSION_NAMES, POSE_NAMES

from . import __version__, jobs
from .audio import from_samples, load_audio
from .errors import Cancelled, FlowVQError
from .images import load_image

log = logging.getLogger("flowvq.server")

SERVICE_TYPE = "_flowvq._tcp.local."
SERVER_NAME = f"flowvq {__version__}"
REQUEST_TYPES = ("generate", "track", "render", "face_model", "learn_actor", "dub")
WAIT_REPORT_S = 0.5  # how often a request waiting for a model load says so
MAX_UPLOADS_PER_CONNECTION = 8


class UploadFile:
    """A file arriving in chunks, written as it comes into the server's upload folder."""

    def __init__(self, uid, total: int, name: str, root: Path):
        import re

        self.id, self.total, self.received = uid, total, 0
        folder = Path(tempfile.mkdtemp(dir=root))
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "upload.bin"
        self.path = folder / safe  # the client's extension kept: ffmpeg and the checks read it
        self.path.touch()

    @property
    def complete(self) -> bool:
        return self.received == self.total

    def append(self, data: bytes) -> None:
        with open(self.path, "ab") as f:
            f.write(data)
        self.received += len(data)

    def discard(self) -> None:
        import shutil

        shutil.rmtree(self.path.parent, ignore_errors=True)



@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    lan: bool = False
    token: str | None = None
    max_frame: int = p.DEFAULT_MAX_FRAME
    max_queue: int = 16  # jobs waiting for the worker; more are answered `busy`
    max_connections: int = 64
    zeroconf: bool = True
    fcg_checkpoint: str | None = None
    device: str | None = None
    idle_timeout: float = 3600.0  # seconds a connection may stay silent
    warm: bool = True  # load the FCG in the background right after `listening on`
    ray_address: str | None = None  # generate on a pool of Ray actors of this cluster (`serve --ray`)
    ray_workers: int = 0  # actors in that pool; 0 = one per CPU slot of the cluster
    actors_dir: str | None = None  # actor profiles the server offers (`serve --actors DIR`), by id


@dataclass
class Job:
    id: object
    conn: "Connection"
    cancel: threading.Event = field(default_factory=threading.Event)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


class Connection:
    def __init__(self, server: "Server", reader, writer):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = writer.get_extra_info("peername") or ("?", 0)
        self.jobs: dict[object, Job] = {}
        self.tasks: set[asyncio.Task] = set()
        self.authenticated = not server.auth_required
        self._write_lock = asyncio.Lock()
        self.closed = False
        self.uploads: dict[object, "UploadFile"] = {}  # by upload id; removed with the connection

    async def send(self, msg: dict) -> None:
        if self.closed:
            return
        async with self._write_lock:
            try:
                await p.write_frame_async(self.writer, msg, self.server.config.max_frame)
            except p.ProtocolError as e:  # a reply too big for one frame
                await p.write_frame_async(self.writer, p.error(e.code, e.message, msg.get("id")))
            except (ConnectionError, RuntimeError):
                self.closed = True

    def post(self, msg: dict, wait: bool = False) -> None:
        """Send from the worker thread; `wait` blocks until sent (backpressure for big frames)."""
        loop = self.server.loop
        if self.closed or loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self.send(msg), loop)
        if wait:
            try:
                fut.result(timeout=600)
            except concurrent.futures.TimeoutError:
                self.closed = True

    def cancel_all(self) -> None:
        for job in self.jobs.values():
            job.cancel.set()


class Server:
    def __init__(self, config: ServerConfig = ServerConfig()):
        if config.lan and not config.token:
            raise ValueError("serving the LAN requires a token")
        self.config = config
        self.auth_required = bool(config.token)
        self.models = jobs.Models(config.fcg_checkpoint, config.device)
        self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="flowvq-worker")
        self.learner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="flowvq-learn")
        self.uploads_dir: Path | None = None  # made on the first upload, removed at close
        self.remote = None  # RemoteGenerate: generate requests go to a Ray actor pool (serve --ray)
        if config.ray_address:
            from .batch.remote import RemoteGenerate

            self.remote = RemoteGenerate(config.ray_address, config.ray_workers,
                                         checkpoint=config.fcg_checkpoint, device=config.device)
            # requests only wait on the cluster here: several at once, one per worker and more queue there
            self.remote_waiters = concurrent.futures.ThreadPoolExecutor(
                max(2, config.max_queue), thread_name_prefix="flowvq-ray")
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._stopped: asyncio.Event | None = None
        self._queued = 0
        self._connections: set[Connection] = set()
        self._zeroconf = None
        self.port = 0
        self.status = self._probe_models()
        self.device_name: str | None = None  # known once the warm-up thread has imported torch
        self._warm_thread: threading.Thread | None = None
        self._closing = threading.Event()

    # ------------------------------------------------------------------ capabilities

    def _probe_models(self) -> dict[str, str | None]:
        """Which request types can work here; a reason for each that cannot (cheap: no loading)."""
        import importlib.util

        status: dict[str, str | None] = {}
        for kind, module in (("generate", "flowvq.fcg"), ("track", "flowvq.tracker"),
                             ("render", "flowvq.render"), ("face_model", "flowvq.facemodel"),
                             ("dub", "flowvq.dub")):
            ok = importlib.util.find_spec(module) is not None
            status[kind] = None if ok else f"{module} is not built yet"
        status["learn_actor"] = None if self.config.actors_dir else \
            "the server was started without --actors DIR (the folder learned actors go to)"
        if status["generate"] is None:
            from .fcg import DEFAULT_CHECKPOINT  # torch-free: fcg/__init__ imports nothing heavy

            ckpt = Path(self.config.fcg_checkpoint or DEFAULT_CHECKPOINT)
            if not ckpt.is_file():
                status["generate"] = f"no trained FCG checkpoint at {ckpt}"
        return status

    def loading(self) -> list[str]:
        """What is still loading: "torch" (device detection), "fcg", "face_model:NAME"."""
        out = list(self.models.loading())
        if self.device_name is None and self._warm_thread is not None \
                and self._warm_thread.is_alive():
            out.insert(0, "torch")
        return out

    def hello(self) -> dict:
        """The greeting, built from what is known now: never imports or loads anything."""
        device_name = self.device_name or self.config.device or "detecting"
        gen = self.models.generator_loaded
        models = {"fcg": {"checkpoint": str(self.config.fcg_checkpoint or "default"),
                          "loaded": gen is not None}}
        if gen is not None:
            models["fcg"].update(gen.info)
        return {
            "type": "hello", "protocol": p.PROTOCOL_VERSION, "server": SERVER_NAME,
            "capabilities": [k for k, why in self.status.items() if why is None]
            + ["upload", "cancel", "shutdown", "ping"],
            "not_implemented": {k: why for k, why in self.status.items() if why is not None},
            "models": models, "loading": self.loading(), "device": device_name,
            "auth_required": self.auth_required, "max_frame": self.config.max_frame,
            **({"ray": self.remote.info()} if self.remote is not None else {}),
            "actors": [{k: v for k, v in a.items() if k != "path"} for a in self.actors().values()],
        }

    def actors(self) -> dict[str, dict]:
        """The actor profiles in --actors DIR, by id (read at each call: a profile copied in while the
        server runs is offered at the next hello). Only actor.json is read here: cheap, no torch."""
        import json

        out: dict[str, dict] = {}
        root = Path(self.config.actors_dir) if self.config.actors_dir else None
        if root is None or not root.is_dir():
            return out
        for index in sorted(root.glob("*/actor.json")):
            try:
                doc = json.loads(index.read_text())
                out[str(doc["id"])] = {"id": str(doc["id"]), "path": str(index.parent),
                                       "fit": doc.get("fit", {}), "sources": len(doc.get("sources", []))}
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("not an actor profile, skipped: %s", index)
        return out

    # ------------------------------------------------------------------ warm-up

    def start_warming(self) -> None:
        """Detect the device and (unless --no-warm) load the FCG on a background thread."""
        if self.remote is not None and not self.remote.ready.is_set():
            threading.Thread(target=self.remote.connect, name="flowvq-ray-connect", daemon=True).start()
            return  # the models live on the cluster's workers
        if self._warm_thread is None:
            self._warm_thread = threading.Thread(target=self._warm, name="flowvq-warm", daemon=True)
            self._warm_thread.start()

    def _warm(self) -> None:
        try:
            import torch

            device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
            if device.startswith("cuda") and torch.cuda.is_available():
                self.device_name = torch.cuda.get_device_name(torch.device(device).index or 0)
            else:
                self.device_name = device
        except Exception as e:  # noqa: BLE001 - a broken torch is reported, not fatal here
            log.warning("device detection failed: %s", e)
            self.device_name = f"unknown ({type(e).__name__})"
        if not self.config.warm or self._closing.is_set() or self.status.get("generate"):
            return
        t0 = time.monotonic()
        try:
            self.models.generator()
            log.info("FCG loaded in %.1f s", time.monotonic() - t0)
        except FlowVQError as e:  # the first generate gets the same error, as a reply
            log.warning("FCG not loaded: %s", e.message)
        except Exception:  # noqa: BLE001
            log.exception("loading the FCG failed")

    def _wait_for_generator(self, progress) -> None:
        """A generate arriving while the FCG loads waits, saying so (and can be cancelled)."""
        if self.models.generator_loaded is not None:
            return
        t0 = time.monotonic()
        progress(0.0, "loading the FCG")
        while "fcg" in self.models.loading():
            time.sleep(WAIT_REPORT_S)
            progress(0.0, f"loading the FCG ({time.monotonic() - t0:.0f} s)")
        self.models.generator()  # loads it here when nothing else was (--no-warm)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> int:
        self.loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(
            self._handle, self.config.host, self.config.port, limit=1 << 20,
            reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.config.zeroconf:
            await self.loop.run_in_executor(None, self._advertise)
        return self.port

    async def serve_until_stopped(self) -> None:
        assert self._stopped is not None
        await self._stopped.wait()
        await self.close()

    def stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    async def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.cancel_all()
            conn.writer.close()
        if self._zeroconf is not None:
            zc, info = self._zeroconf
            self._zeroconf = None
            await self.loop.run_in_executor(None, lambda: (zc.unregister_service(info), zc.close()))
        self.worker.shutdown(wait=False, cancel_futures=True)
        self.learner.shutdown(wait=False, cancel_futures=True)
        if self.uploads_dir is not None:
            import shutil

            shutil.rmtree(self.uploads_dir, ignore_errors=True)
        if self.remote is not None:
            await self.loop.run_in_executor(None, self.remote.close)
            self.remote_waiters.shutdown(wait=False, cancel_futures=True)

    def _advertise(self) -> None:
        from zeroconf import IPVersion, ServiceInfo, Zeroconf

        loopback = not self.config.lan
        if not loopback and not self.auth_required:
            return  # never advertise an unauthenticated server beyond this machine
        address = "127.0.0.1" if loopback else _lan_address()
        zc = Zeroconf(interfaces=[address] if loopback else None, ip_version=IPVersion.V4Only)
        name = f"flowvq-{socket.gethostname()}-{self.port}"
        info = ServiceInfo(
            SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", addresses=[socket.inet_aton(address)],
            port=self.port, server=f"{name}.local.",
            properties={"protocol": str(p.PROTOCOL_VERSION), "version": __version__,
                        "auth": "token" if self.auth_required else "none"})
        zc.register_service(info)
        self._zeroconf = (zc, info)

    # ------------------------------------------------------------------ connections

    async def _handle(self, reader, writer) -> None:
        conn = Connection(self, reader, writer)
        if len(self._connections) >= self.config.max_connections:
            await conn.send(p.error(p.BUSY, "too many connections"))
            writer.close()
            return
        self._connections.add(conn)
        try:
            await conn.send(self.hello())
            while not conn.closed:
                try:
                    msg = await asyncio.wait_for(
                        p.read_frame_async(reader, self.config.max_frame),
                        self.config.idle_timeout)
                except p.ProtocolError as e:
                    if not e.fatal:  # a whole frame with bad content: answer and go on
                        await conn.send(p.error(e.code, e.message))
                        continue
                    # the stream can no longer be trusted to be on a frame boundary: close
                    log.info("closing %s: %s", conn.peer, e.message)
                    await conn.send(p.error(e.code, e.message))
                    break
                except (p.ConnectionClosed, ConnectionError, asyncio.TimeoutError):
                    break
                await self._dispatch(conn, msg)
        except asyncio.CancelledError:
            pass  # the server is stopping (a cancelled handler would be logged as an error)
        except Exception:  # a bug must not take the server down with it
            log.exception("connection %s failed", conn.peer)
            await conn.send(p.error(p.INTERNAL, "internal server error; see the server log"))
        finally:
            conn.closed = True
            conn.cancel_all()  # a client that leaves cancels its jobs
            self._connections.discard(conn)
            for up in conn.uploads.values():
                up.discard()  # its jobs were cancelled just above; an open file reads on after the unlink
            writer.close()

    async def _dispatch(self, conn: Connection, msg: dict) -> None:
        rid = msg.get("id") if isinstance(msg.get("id"), (int, str)) else None
        try:
            req = m.parse_request(msg)
        except p.ProtocolError as e:
            await conn.send(p.error(e.code, e.message, rid))
            return
        if not conn.authenticated and not isinstance(req, m.Hello):
            log.warning("unauthenticated request from %s refused", conn.peer)
            await conn.send(p.error(p.UNAUTHORIZED, "send hello with the server's token first", rid))
            conn.closed = True
            return
        if isinstance(req, m.Hello):
            await self._on_hello(conn, req)
        elif isinstance(req, m.Ping):
            await conn.send({"type": "pong", "id": req.id})
        elif isinstance(req, m.Cancel):
            job = conn.jobs.get(req.target)
            if job is None:
                await conn.send(p.error(p.BAD_REQUEST, f"no running job with id {req.target!r}",
                                        req.id))
            else:
                job.cancel.set()
        elif isinstance(req, m.Upload):
            await conn.send(self._on_upload(conn, req))
        elif isinstance(req, m.Shutdown):
            if not _is_loopback(str(conn.peer[0])):
                await conn.send(p.error(p.FORBIDDEN, "shutdown is accepted from this machine only",
                                        req.id))
                return
            await conn.send({"type": "result", "id": req.id, "request": "shutdown"})
            self.stop()
        else:
            await self._submit(conn, req)

    async def _on_hello(self, conn: Connection, req: m.Hello) -> None:
        if req.protocol != p.PROTOCOL_VERSION:
            await conn.send(p.error(p.UNSUPPORTED_VERSION, f"this server speaks protocol "
                                    f"{p.PROTOCOL_VERSION}, the client {req.protocol}", req.id))
            return
        if self.auth_required:
            ok = req.token is not None and hmac.compare_digest(req.token.encode(),
                                                                self.config.token.encode())
            if not ok:
                log.warning("wrong token from %s: connection closed", conn.peer)
                await conn.send(p.error(p.UNAUTHORIZED, "wrong or missing token", req.id))
                conn.closed = True
                return
            conn.authenticated = True
        await conn.send({"type": "result", "id": req.id, "request": "hello"})

    async def _submit(self, conn: Connection, req: m.Request) -> None:
        why = self.status.get(req.type)
        if why is not None:
            await conn.send(p.error(p.NOT_IMPLEMENTED, why, req.id))
            return
        if req.id is None:
            await conn.send(p.error(p.BAD_REQUEST, f"a {req.type} request needs an 'id'"))
            return
        if req.id in conn.jobs:
            await conn.send(p.error(p.BAD_REQUEST, f"id {req.id!r} is already in use", req.id))
            return
        if self._queued >= self.config.max_queue:
            await conn.send(p.error(p.BUSY, f"{self._queued} jobs are waiting; try again later",
                                    req.id))
            return
        job = Job(req.id, conn)
        conn.jobs[req.id] = job
        self._queued += 1
        # run as a task: the connection keeps reading, so a `cancel` arrives while the job runs
        conn.tasks.add(asyncio.create_task(self._run_and_reply(conn, job, req)))

    async def _run_and_reply(self, conn: Connection, job: Job, req: m.Request) -> None:
        try:
            pool = self.remote_waiters if self.remote is not None and req.type == "generate" else self.worker
            if req.type == "learn_actor":  # minutes long: on its own thread, generate keeps serving
                pool = self.learner
            reply = await self.loop.run_in_executor(pool, self._run_job, job, req)
        finally:
            self._queued -= 1
            conn.jobs.pop(req.id, None)
            conn.tasks.discard(asyncio.current_task())
        await conn.send(reply)

    # ------------------------------------------------------------------ worker thread

    def _run_job(self, job: Job, req: m.Request) -> dict:
        if job.cancel.is_set() or job.conn.closed:
            return p.error(p.CANCELLED, "cancelled before it started", job.id)

        def progress(fraction: float, stage: str) -> None:
            if job.cancel.is_set():
                raise Cancelled("cancelled")
            job.conn.post(p.progress(job.id, fraction, stage))

        try:
            handler = getattr(self, f"_do_{req.type}")
            return handler(job, req, progress)
        except Cancelled:
            return p.error(p.CANCELLED, "cancelled", job.id)
        except (FlowVQError, p.ProtocolError) as e:  # ProtocolError: the shared contract refused a value
            return p.error(e.code, e.message, job.id)
        except MemoryError:
            return p.error(p.TOO_LARGE, "out of memory for this request", job.id)
        except ImportError as e:  # a model package that is not (fully) built
            return p.error(p.NOT_IMPLEMENTED, f"{req.type} is not available: {e}", job.id)
        except Exception as e:  # keep serving; the log has the traceback
            log.exception("job %r (%s) failed", job.id, req.type)
            return p.error(p.INTERNAL, f"internal error: {type(e).__name__}: {e}", job.id)
        finally:
            _free_accelerator_memory()

    def _actor_path(self, actor_id: str):
        """A client's actor id -> the profile folder this server offers (never a client's path)."""
        if not actor_id:
            return None
        known = self.actors()
        if actor_id not in known:
            raise FlowVQError(f"unknown actor {actor_id!r}; this server offers: "
                              f"{', '.join(known) or 'none (start it with --actors DIR)'}")
        return known[actor_id]["path"]

    def _do_generate(self, job: Job, req: m.Generate, progress) -> dict:
        progress(0.0, "reading audio")
        if req.audio is not None:
            audio = load_audio(req.audio, name="the audio")
        else:
            audio = from_samples(req.samples, req.sample_rate, label="the audio")
        reference = load_image(req.reference_image, "the reference image").rgb \
            if req.reference_image is not None else None
        actor = self._actor_path(req.settings.actor)
        if self.remote is not None:
            if actor is not None:
                raise FlowVQError("actor profiles are not served on a Ray pool yet: drop 'actor' or use "
                                  "a server without --ray", code=p.NOT_IMPLEMENTED)
            takes = self.remote.generate(audio, req.settings, reference, progress, job.cancel)
            model = {"ray": self.remote.info()}
        else:
            if actor is None:
                self._wait_for_generator(progress)
            else:
                progress(0.0, f"loading actor {req.settings.actor}")
            takes = jobs.generate(self.models, audio, req.settings, reference, progress, job.cancel, actor=actor)
            model = self.models.actor_generator(actor).info if actor else self.models.generator().info
            model = {k: v for k, v in model.items() if k != "actor_path"}  # no server paths to clients
        return {
            "type": "result", "id": job.id, "request": "generate", "settings": req.settings.to_wire(),
            "pose_names": list(POSE_NAMES), "audio_sha256": audio.sha256, "duration": audio.duration,
            "takes": [t.to_wire() for t in takes], "model": model,
        }

    def _on_upload(self, conn: Connection, req: m.Upload) -> dict:
        """Append one chunk (on the event loop: chunks are at most one frame). Errors keep the connection."""
        up = conn.uploads.get(req.id)
        if up is None:
            if req.offset != 0:
                return p.error(p.BAD_REQUEST, f"upload {req.id!r} is unknown: its first chunk must have offset 0",
                               req.id)
            if len(conn.uploads) >= MAX_UPLOADS_PER_CONNECTION:
                return p.error(p.TOO_LARGE, f"{MAX_UPLOADS_PER_CONNECTION} uploads are open on this connection; "
                                            "finish or close some first", req.id)
            if self.uploads_dir is None:
                self.uploads_dir = Path(tempfile.mkdtemp(prefix="flowvq-uploads-"))
            up = conn.uploads[req.id] = UploadFile(req.id, req.total, req.name, self.uploads_dir)
        elif req.total != up.total:
            return p.error(p.BAD_REQUEST, f"upload {req.id!r} was started with total {up.total}, "
                                          f"not {req.total}", req.id)
        elif req.offset != up.received:
            return p.error(p.BAD_REQUEST, f"upload {req.id!r}: expected the chunk at offset {up.received}, "
                                          f"got {req.offset}", req.id)
        try:
            up.append(req.data)
        except OSError as e:
            up.discard()
            conn.uploads.pop(req.id, None)
            return p.error(p.TOO_LARGE, f"upload {req.id!r} could not be stored: {e.strerror or e}", req.id)
        return {"type": "result", "id": req.id, "request": "upload", "received": up.received,
                "complete": up.complete}

    def _do_learn_actor(self, job: Job, req: m.LearnActor, progress) -> dict:
        from .actor.learn import learn

        files = []
        for uid in req.uploads:
            up = job.conn.uploads.get(uid)
            if up is None or not up.complete:
                state = "unknown" if up is None else f"incomplete ({up.received} of {up.total} bytes)"
                raise FlowVQError(f"upload {uid!r} is {state}: send every chunk first")
            files.append(up.path)
        progress(0.0, "checking the footage")
        out = Path(self.config.actors_dir) / req.name
        learn(files, out, steps=req.steps, max_seconds=req.max_seconds, actor_id=req.name, progress=False,
              log=lambda *a: log.info("learn_actor %s: %s", req.name, " ".join(map(str, a))), report=progress,
              mouth_bank=req.mouth_bank)
        actor = {k: v for k, v in self.actors().get(req.name, {"id": req.name}).items() if k != "path"}
        return {"type": "result", "id": job.id, "request": "learn_actor", "actor": actor}

    def _uploaded(self, job: Job, uid, what: str) -> "UploadFile":
        up = job.conn.uploads.get(uid)
        if up is None or not up.complete:
            state = "unknown" if up is None else f"incomplete ({up.received} of {up.total} bytes)"
            raise FlowVQError(f"{what} upload {uid!r} is {state}: send every chunk first")
        return up

    def _do_dub(self, job: Job, req: m.Dub, progress) -> dict:
        """The shot (an upload) dubbed to the new line; each frame streamed as `flowvq dub` writes it
        (read back from a temporary folder and removed once sent; the folder goes at the end)."""
        import json
        import shutil

        from .dub import dub_shot
        from .render.writers import frame_name

        shot = self._uploaded(job, req.shot, "shot")
        actor = self._actor_path(req.settings.actor)
        work = Path(tempfile.mkdtemp(prefix="flowvq-dub-"))
        try:
            line: dict = {}
            if req.audio is not None or req.audio_upload is not None:
                progress(0.0, "reading audio")
                if req.audio is not None:
                    line["audio"] = load_audio(req.audio, name="the audio")
                else:
                    up = self._uploaded(job, req.audio_upload, "audio")
                    line["audio"] = load_audio(up.path, name=f"the audio {up.path.name!r}")
                if actor is None:
                    self._wait_for_generator(progress)
            else:  # curves: written as a tracked-curves file, what `flowvq dub --take` reads
                curves = work / "line.npz"
                np.savez(curves, expression=req.expression, fps=np.float64(req.line_fps))
                line["take"] = curves
            frames = work / "frames"
            total = [0]

            def on_frame(i: int, _rgb) -> None:
                if job.cancel.is_set() or job.conn.closed:
                    raise Cancelled("cancelled")
                if not total[0]:  # dub.json is written with the shot's frame count before the first frame
                    total[0] = int(json.loads((frames / "dub.json").read_text())["frames"])
                path = frames / frame_name(i, req.format)
                job.conn.post({"type": "frame", "id": job.id, "index": int(i), "total": total[0],
                               "format": req.format, "image": path.read_bytes()}, wait=True)
                path.unlink()

            try:
                manifest = dub_shot(shot.path, frames, **line, actor=actor, settings=req.settings,
                                    fmt=req.format, models=self.models, progress=progress, cancel=job.cancel,
                                    on_frame=on_frame, log=lambda *a: log.info("dub %r: %s", job.id,
                                                                               " ".join(map(str, a))))
            except FlowVQError as e:  # the client never sees the server's folders
                raise type(e)(e.message.replace(str(shot.path.parent) + "/", "").replace(str(work) + "/", ""),
                              e.code) from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        bank = manifest.get("bank") or {}
        source = "the shot itself" if str(bank.get("from", "")).startswith("the shot") else \
            f"actor {req.settings.actor}"
        return {"type": "result", "id": job.id, "request": "dub", "frames": int(manifest["frames"]),
                "fps": float(manifest["fps"]), "width": int(manifest["width"]), "height": int(manifest["height"]),
                "format": req.format, "dubbed_frames": int(manifest.get("dubbed_frames", 0)),
                "line_frames": int(manifest.get("line_frames", 0)), "line": str(manifest.get("line", "")),
                "bank": {"from": source, "frames": int(bank.get("frames", 0))},
                "notes": [str(n) for n in manifest.get("notes", [])],
                "seconds": manifest.get("seconds"), "synthesis_fps": manifest.get("synthesis_fps")}

    def _do_track(self, job: Job, req: m.Track, progress) -> dict:
        image = load_image(req.image, "the image")
        r = jobs.track_image(image.rgb, req.model, progress)
        cam = r.camera
        camera = {k: float(v) for k, v in vars(cam).items()} if hasattr(cam, "__dict__") \
            else {f: float(getattr(cam, f)) for f in cam.__dataclass_fields__}
        return {"type": "result", "id": job.id, "request": "track",
                "expression": r.expression, "pose": r.pose, "identity": r.identity,
                "camera": camera, "landmarks": r.landmarks, "confidence": r.confidence,
                "names": list(EXPRESSION_NAMES),
                "notes": list(image.notes) + list(getattr(r, "notes", []))}

    def _do_face_model(self, job: Job, req: m.FaceModel, progress) -> dict:
        progress(0.0, "building the face model")
        arrays = self.models.face_model(req.model).to_arrays()
        out = {"type": "result", "id": job.id, "request": "face_model", "model": req.model}
        for k, v in arrays.items():
            out[k] = [str(n) for n in v] if k == "names" else v
        return out

    def _do_render(self, job: Job, req: m.Render, progress) -> dict:
        import cv2

        from .render import PlateRenderer

        image = load_image(req.portrait, "the portrait")
        rgb = image.rgb
        if req.max_side and max(rgb.shape[:2]) > req.max_side:
            s = req.max_side / max(rgb.shape[:2])
            rgb = cv2.resize(rgb, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)),
                             interpolation=cv2.INTER_AREA)
        progress(0.0, "fitting the portrait")
        renderer = PlateRenderer(rgb, refine=None)
        total = int(req.expression.shape[0])
        h, w = rgb.shape[:2]
        for i, frame in renderer.render(req.expression, req.pose, cancel=job.cancel):
            if job.cancel.is_set() or job.conn.closed:
                raise Cancelled("cancelled")
            job.conn.post({"type": "frame", "id": job.id, "index": int(i), "total": total,
                           "format": req.format, "image": _encode_frame(frame, req.format)},
                          wait=True)
            job.conn.post(p.progress(job.id, (i + 1) / total, "rendering"))
        return {"type": "result", "id": job.id, "request": "render", "frames": total,
                "width": int(w), "height": int(h), "notes": list(image.notes)}


def _encode_frame(frame: np.ndarray, fmt: str) -> bytes:
    """One plate frame as file bytes, encoded exactly as `flowvq render` writes it."""
    import cv2

    from .render.writers import SUFFIX, encode

    img, params = encode(frame, fmt)
    ok, buf = cv2.imencode(SUFFIX[fmt], img, params)
    if not ok:
        raise RuntimeError(f"{fmt} encoding failed")
    return buf.tobytes()


def _free_accelerator_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _lan_address() -> str:
    # the address the OS would route out of; no packet is sent by a UDP connect
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def run(config: ServerConfig, announce=print) -> None:
    """Serve until a shutdown request or Ctrl-C."""

    server: Server | None = None

    async def main() -> None:
        nonlocal server
        server = Server(config)
        port = await server.start()
        # a stop from the system (service manager, `kill`, Ctrl-C) closes like a shutdown request:
        # jobs cancelled, uploads removed (left behind they are whole videos in the temp folder)
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                server.loop.add_signal_handler(sig, server.stop)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
                pass
        announce(f"listening on {config.host}:{port}", flush=True)
        server.start_warming()
        await server.serve_until_stopped()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None and server._warm_thread is not None:
            server._closing.set()
            # an import or a load cut off by the interpreter's exit can crash it: let it finish
            server._warm_thread.join(30)
