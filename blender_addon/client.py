"""Talk to a FlowVQ backend without ever blocking Blender's main thread.

bpy-free. Each request runs as a `Job` on its own worker thread and its own TCP connection;
the thread posts events (progress, frames, the result or an error) to a queue that the main
thread drains from a `bpy.app.timers` callback (or synchronously, in blocking mode). Every
socket call has a timeout, cancelling sends the protocol's `cancel` message, and every failure
ends as one `Failed` event with the backend's code and human message.
"""
from __future__ import annotations

import itertools
import os
import queue
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ._shared import protocol
from .actors import offered as _offered_actors

CLIENT_NAME = "flowvq-blender 0.1.0"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 47650  # `flowvq serve`'s default
# Three separate waits. Connecting is quick or refused on any machine; a backend that accepted
# but has not greeted yet is starting (importing torch, loading models) or busy, so it gets a
# generous wait; a job may be silent for minutes while the backend works.
CONNECT_TIMEOUT = 3.0
GREETING_TIMEOUT = 60.0
IDLE_TIMEOUT = 300.0
STARTING = "starting"  # error code: accepted the connection, no greeting yet
UPLOAD_CHUNK = 4 * 1024 * 1024  # bytes per `upload` frame (well under the backend's frame limit)


@dataclass(frozen=True)
class Endpoint:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str = ""

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServerInfo:
    """What the backend's greeting says about itself."""
    server: str
    protocol: int
    capabilities: tuple[str, ...]
    not_implemented: dict
    models: dict
    device: str
    auth_required: bool
    max_frame: int = 0  # the largest frame the backend accepts (0: not announced)
    actors: tuple = ()  # the actor profiles it offers: ({"id", "fit", "sources"}, ...)

    @classmethod
    def from_greeting(cls, msg: dict) -> "ServerInfo":
        return cls(server=str(msg.get("server", "?")), protocol=int(msg.get("protocol", 0)),
                   capabilities=tuple(msg.get("capabilities") or ()),
                   not_implemented=dict(msg.get("not_implemented") or {}),
                   models=dict(msg.get("models") or {}), device=str(msg.get("device", "?")),
                   auth_required=bool(msg.get("auth_required", False)),
                   max_frame=int(msg.get("max_frame") or 0),
                   actors=tuple(_offered_actors(msg.get("actors"))))

    def available(self, request: str) -> bool:
        return request in self.capabilities and request not in self.not_implemented


@dataclass(frozen=True)
class Upload:
    """A file a request names by `id`, sent in chunks on the request's own connection before it
    (uploads live as long as their connection): a file on disk (`path`) or bytes (`data`)."""
    id: str
    name: str  # a plain file name: its extension tells the backend what the file is
    path: str = ""
    data: bytes | None = None

    def size(self) -> int:
        return len(self.data) if self.data is not None else os.path.getsize(self.path)

    def chunks(self, size: int):
        if self.data is not None:
            for off in range(0, len(self.data), size):
                yield off, self.data[off:off + size]
            return
        with open(self.path, "rb") as f:
            off = 0
            while chunk := f.read(size):
                yield off, chunk
                off += len(chunk)


# ---------------------------------------------------------------------------- events

@dataclass(frozen=True)
class Connected:
    info: ServerInfo


@dataclass(frozen=True)
class Progress:
    fraction: float
    stage: str


@dataclass(frozen=True)
class Frame:
    index: int
    total: int
    payload: Any  # what the job's on_frame returned (e.g. the file it wrote), else the message


@dataclass(frozen=True)
class Result:
    message: dict


@dataclass(frozen=True)
class Failed:
    code: str
    message: str


class BackendError(Exception):
    """A failed request: the backend's error code and message, or a connection problem."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------- connection

def _connect(endpoint: Endpoint, timeout: float = CONNECT_TIMEOUT,
             greeting_timeout: float = GREETING_TIMEOUT) -> tuple[socket.socket, ServerInfo]:
    """Open a connection (within `timeout`), read the greeting and answer with our hello
    (within `greeting_timeout`: a starting or busy backend accepts before it greets)."""
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except ConnectionRefusedError:
        raise BackendError("unreachable", f"no FlowVQ backend at {endpoint} (connection refused): "
                           "start one with 'flowvq serve' or the Start local backend button") \
            from None
    except socket.timeout:
        raise BackendError("unreachable", f"no answer from {endpoint} within {timeout:g} s") \
            from None
    except OSError as e:
        raise BackendError("unreachable", f"cannot reach {endpoint}: {e.strerror or e}") from None
    try:
        sock.settimeout(greeting_timeout)
        greeting = protocol.recv_frame(sock)
        if greeting.get("type") != "hello":
            raise BackendError("bad_frame", f"{endpoint} is not a FlowVQ backend "
                               f"(first message was {greeting.get('type')!r})")
        info = ServerInfo.from_greeting(greeting)
        if info.protocol != protocol.PROTOCOL_VERSION:
            raise BackendError("unsupported_version",
                               f"backend speaks protocol {info.protocol}, this add-on speaks "
                               f"{protocol.PROTOCOL_VERSION}: update the older side")
        hello = {"type": "hello", "id": "hello", "protocol": protocol.PROTOCOL_VERSION,
                 "client": CLIENT_NAME}
        if endpoint.token:
            hello["token"] = endpoint.token
        protocol.send_frame(sock, hello)
        reply = protocol.recv_frame(sock)
        if reply.get("type") == "error":
            raise BackendError(str(reply.get("code", "error")), str(reply.get("message", "")))
        return sock, info
    except BackendError:
        sock.close()
        raise
    except socket.timeout:
        sock.close()
        raise BackendError(STARTING, f"{endpoint} accepted the connection but sent no greeting "
                           f"within {greeting_timeout:g} s (backend starting or busy; if it "
                           "stays so, another program may use that port)") from None
    except (protocol.ConnectionClosed, OSError) as e:
        sock.close()
        raise BackendError("disconnected", f"{endpoint} closed the connection during the "
                           f"greeting ({e})") from None
    except protocol.ProtocolError as e:
        sock.close()
        raise BackendError(e.code, f"{endpoint} sent a malformed greeting: {e.message}") from None


def probe(endpoint: Endpoint, timeout: float = CONNECT_TIMEOUT,
          greeting_timeout: float = GREETING_TIMEOUT) -> ServerInfo:
    """Connect, read the greeting, disconnect. Blocking: call it off the main thread in the UI."""
    sock, info = _connect(endpoint, timeout, greeting_timeout)
    sock.close()
    return info


_ids = itertools.count(1)


class Job:
    """One request on a worker thread. The main thread only calls start/cancel/poll/wait."""

    def __init__(self, endpoint: Endpoint, request: dict, *,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 greeting_timeout: float = GREETING_TIMEOUT,
                 idle_timeout: float = IDLE_TIMEOUT, cancel_grace: float = 5.0,
                 on_frame: Callable[[dict], Any] | None = None, uploads: tuple = ()):
        self.endpoint = endpoint
        self.id = next(_ids)
        self.request = {**request, "id": self.id}
        self.kind = str(request.get("type"))
        self.connect_timeout = connect_timeout  # the TCP connect
        self.greeting_timeout = greeting_timeout  # accepted -> the backend's hello
        self.idle_timeout = idle_timeout  # seconds without any message from the backend
        self.cancel_grace = cancel_grace  # seconds to wait for the backend to confirm a cancel
        self.on_frame = on_frame  # runs on the worker thread: keep it bpy-free (e.g. write a file)
        self.uploads = tuple(uploads)  # Upload(s) sent before the request, on its connection
        self.info: ServerInfo | None = None
        self.fraction = 0.0
        self.stage = "connecting"
        self._events: queue.Queue = queue.Queue()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"flowvq-{self.kind}-{self.id}",
                                        daemon=True)

    # -- main thread
    def start(self) -> "Job":
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def finished(self) -> bool:
        """The worker has posted its last event (which may still sit in the queue)."""
        return self._finished.is_set()

    def poll(self) -> list:
        """Every event posted so far, without waiting."""
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def wait_event(self, timeout: float):
        """The next event, or None after `timeout` seconds."""
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # -- worker thread
    def _post(self, event) -> None:
        if isinstance(event, Progress):
            self.fraction, self.stage = event.fraction, event.stage
        self._events.put(event)

    def _run(self) -> None:
        try:
            self._post(self._talk())
        except BackendError as e:
            self._post(Failed(e.code, e.message))
        except protocol.ProtocolError as e:
            self._post(Failed(e.code, f"malformed message from the backend: {e.message}"))
        except protocol.ConnectionClosed:
            self._post(Failed("disconnected", f"the backend at {self.endpoint} closed the "
                                              "connection before answering"))
        except OSError as e:
            self._post(Failed("disconnected", f"connection to {self.endpoint} failed: {e}"))
        except Exception as e:  # a bug must still end the job, never leave the UI waiting
            self._post(Failed("internal", f"add-on error: {type(e).__name__}: {e}"))
        finally:
            self._finished.set()

    def _talk(self):
        if self._cancel.is_set():
            return Failed("cancelled", "cancelled before it started")
        sock, self.info = _connect(self.endpoint, self.connect_timeout, self.greeting_timeout)
        with sock:
            self._post(Connected(self.info))
            sock.settimeout(max(self.greeting_timeout, 30.0))  # per frame, once bytes flow
            limit = max(protocol.DEFAULT_MAX_FRAME, self.info.max_frame)
            if self.uploads:
                failed = self._send_uploads(sock, limit)
                if failed is not None:
                    return failed
            try:
                protocol.send_frame(sock, self.request, limit)
            except protocol.ProtocolError as e:  # refused here, before a byte is sent
                return Failed(e.code, f"the {self.kind} request is too big to send "
                                      f"({e.message}): use a shorter audio clip or image")
            last_heard = time.monotonic()
            cancel_sent_at: float | None = None
            while True:
                if self._cancel.is_set() and cancel_sent_at is None:
                    protocol.send_frame(sock, {"type": "cancel", "id": self.id})
                    cancel_sent_at = time.monotonic()
                readable, _, _ = select.select([sock], [], [], 0.1)
                now = time.monotonic()
                if not readable:
                    if cancel_sent_at is not None and now - cancel_sent_at > self.cancel_grace:
                        return Failed("cancelled", "cancelled (the backend did not confirm)")
                    if now - last_heard > self.idle_timeout:
                        return Failed("timeout", f"the backend sent nothing for "
                                                 f"{self.idle_timeout:g} s; gave up")
                    continue
                msg = protocol.recv_frame(sock, limit)
                last_heard = now
                if msg.get("id") != self.id:
                    continue  # e.g. a late answer to our hello
                kind = msg.get("type")
                if kind == "progress":
                    self._post(Progress(float(msg.get("fraction", 0.0)), str(msg.get("stage", ""))))
                elif kind == "frame":
                    payload = self.on_frame(msg) if self.on_frame else msg
                    self._post(Frame(int(msg.get("index", 0)), int(msg.get("total", 0)), payload))
                elif kind in ("result", "pong"):
                    if cancel_sent_at is not None:  # the user cancelled: never apply it
                        return Failed("cancelled", "cancelled (the backend had already "
                                                   "finished; its result was dropped)")
                    return Result(msg)
                elif kind == "error":
                    return Failed(str(msg.get("code", "error")), str(msg.get("message", "")))

    def _send_uploads(self, sock: socket.socket, limit: int) -> Failed | None:
        """Send every upload in order, chunk by chunk, each chunk answered before the next; Esc
        stops between chunks. None when all arrived, else the Failed that ends the job."""
        try:
            sizes = [u.size() for u in self.uploads]
        except OSError as e:  # moved or deleted since the operator looked
            return Failed("bad_request", f"cannot read {e.filename or 'a file to upload'}: "
                                         f"{e.strerror or e}")
        total, sent = max(1, sum(sizes)), 0
        chunk = max(1024, min(UPLOAD_CHUNK, (self.info.max_frame or limit) - 65536))
        for up, size in zip(self.uploads, sizes):
            if size == 0:
                return Failed("bad_request", f"{up.name} is empty: nothing to upload")
            for offset, data in up.chunks(chunk):
                if self._cancel.is_set():
                    return Failed("cancelled", f"cancelled while uploading {up.name}")
                protocol.send_frame(sock, {"type": "upload", "id": up.id, "offset": offset,
                                           "total": size, "data": data, "name": up.name}, limit)
                while (reply := protocol.recv_frame(sock, limit)).get("id") != up.id:
                    pass  # e.g. a late answer to our hello
                if reply.get("type") == "error":
                    return Failed(str(reply.get("code", "error")),
                                  f"uploading {up.name}: {reply.get('message', '')}")
                sent += len(data)
                self._post(Progress(sent / total, f"uploading {up.name}"))
        return None


def run_blocking(job: Job, on_event: Callable[[Any], None] | None = None,
                 timeout: float | None = None):
    """Start `job` (if needed) and drain its events on this thread until the last one.

    For scripts and tests; returns the final Result or Failed event.
    """
    if not job._thread.is_alive() and not job.finished:
        job.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if deadline is not None and time.monotonic() > deadline:
            job.cancel()
            deadline = None
        event = job.wait_event(0.2)
        if event is None:
            continue
        if on_event is not None:
            on_event(event)
        if isinstance(event, (Result, Failed)):
            return event


@dataclass
class JobBoard:
    """The jobs a Blender session has in flight, drained by one timer on the main thread."""
    jobs: dict[int, tuple[Job, Callable[[Any], None]]] = field(default_factory=dict)

    def add(self, job: Job, on_event: Callable[[Any], None]) -> Job:
        self.jobs[job.id] = (job, on_event)
        if not job.finished and not job._thread.is_alive():
            job.start()
        return job

    def drain(self) -> bool:
        """Hand every pending event to its job's handler; True while jobs remain."""
        for job_id, (job, handler) in list(self.jobs.items()):
            finished = job.finished  # read before polling: no event can slip in after
            for event in job.poll():
                handler(event)
            if finished:
                self.jobs.pop(job_id, None)
        return bool(self.jobs)

    def cancel_all(self) -> None:
        for job, _ in self.jobs.values():
            job.cancel()
