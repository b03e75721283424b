"""Background jobs: the one place that runs them, drains them and reports their outcome.

A backend request runs as a `client.Job` on its own worker thread; a status check or a local
backend start runs as a plain thread whose result goes to a queue; a local command (`flowvq
actor learn`) runs as a subprocess (`ProcessTask`) that the same timer polls. One `bpy.app.timers`
callback (`drain`) hands every event to bpy on the main thread. The state worker threads share
with the main thread (the pending-check count, the result queue) sits behind `_LOCK`; the task
list and the job board are touched on the main thread only.

This module is the only one that calls `report()` and writes the status text: operators hand
it their error (`fail`), their success (`info`) or their job (`start`).
"""
from __future__ import annotations

import collections
import json
import queue
import subprocess
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable

import bpy
from bpy.props import BoolProperty, FloatProperty

from . import client, connection
from .connection import UserError
from .results import TakeError

_LOCK = threading.Lock()
_CHECKS = 0  # background checks (status probes, local backend starts) still running
_CHECK_RESULTS: queue.Queue = queue.Queue()  # (endpoint, ServerInfo | None, BackendError | str | None)
TASKS: list["Task"] = []  # main thread only
BOARD = client.JobBoard()  # main thread only


# ---------------------------------------------------------------------------- reporting

def fail(op, message: str) -> set:
    """An operator's error: a Blender report (RuntimeError in scripts) and the panel's last error."""
    op.report({"ERROR"}, f"FlowVQ: {message}")
    try:
        connection.status().last_error = message
    except AttributeError:  # no window manager (unregistering)
        pass
    return {"CANCELLED"}


def info(op, message: str, level: str = "INFO") -> set:
    op.report({level}, f"FlowVQ: {message}")
    return {"FINISHED"}


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "SEQUENCE_EDITOR"):
                area.tag_redraw()


def set_connected(info_: client.ServerInfo, ep: client.Endpoint) -> None:
    st = connection.status()
    st.connected = True
    st.endpoint = str(ep)
    st.server, st.device = info_.server, info_.device
    st.models = ", ".join(f"{k}: {v.get('checkpoint', v) if isinstance(v, dict) else v}"
                          for k, v in info_.models.items())
    st.unavailable = "; ".join(f"{k}: {why}" for k, why in info_.not_implemented.items())
    st.actors = json.dumps(list(info_.actors))
    st.text = f"Connected to {info_.server} at {ep} ({info_.device})"


def set_disconnected(message: str, code: str = "unreachable") -> None:
    st = connection.status()
    st.connected = False
    st.server = st.device = st.models = st.unavailable = st.actors = ""
    # accepted but not greeted yet: the backend is starting (or busy), not absent
    st.text = (f"Backend starting: {message}" if code == client.STARTING
               else f"Not connected: {message}")


def apply_status(ep, info_, err) -> None:
    if info_ is not None:
        set_connected(info_, ep)
    elif isinstance(err, client.BackendError):
        set_disconnected(err.message, err.code)
    else:
        set_disconnected(str(err or "no backend"))
    _redraw()


# ---------------------------------------------------------------------------- background checks

def set_pending(text: str) -> None:
    connection.status().text = text
    _redraw()


def run_check(work: Callable[[], tuple], pending: str = "") -> None:
    """Run `work` (bpy-free, returns (endpoint, info, error)) on a thread; drain applies it."""
    global _CHECKS
    if pending:
        set_pending(pending)

    def body():
        global _CHECKS
        try:
            result = work()
        except Exception as e:  # a bug must still end the check
            traceback.print_exc()
            result = (client.Endpoint(), None, f"add-on error: {type(e).__name__}: {e}")
        with _LOCK:
            _CHECK_RESULTS.put(result)
            _CHECKS -= 1

    with _LOCK:
        _CHECKS += 1
    threading.Thread(target=body, name="flowvq-check", daemon=True).start()
    ensure_timer()


def checks_running() -> bool:
    with _LOCK:
        return _CHECKS > 0


# ---------------------------------------------------------------------------- jobs

@dataclass
class Task:
    """A job plus what to do with its result (`spec.apply`); handled on the main thread only."""
    job: client.Job
    spec: object
    done: bool = False
    error: tuple[str, str] | None = None
    summary: str = ""

    @property
    def kind(self) -> str:
        return self.job.kind

    def cancel(self) -> None:
        self.job.cancel()

    def poll(self) -> None:
        """Jobs report through their events (handle); only process tasks poll."""

    def handle(self, event) -> None:
        st = connection.status()
        if isinstance(event, client.Connected):
            set_connected(event.info, self.job.endpoint)
        elif isinstance(event, client.Progress):
            st.progress, st.stage = event.fraction, event.stage
        elif isinstance(event, client.Frame):
            on_frame = getattr(self.spec, "on_frame", None)
            if on_frame is not None:
                on_frame(event.payload)
            st.progress = (event.index + 1) / max(event.total, 1)
            st.stage = f"frame {event.index + 1}/{event.total}"
        elif isinstance(event, client.Result):
            try:
                self.summary = self.spec.apply(event.message)
            except (UserError, TakeError, ValueError, KeyError) as e:
                self.error = ("bad_result", str(e))
            except Exception as e:  # a bug must end the task, never kill the drain timer
                traceback.print_exc()
                self.error = ("internal", f"add-on error: {type(e).__name__}: {e}")
            self.done = True
        elif isinstance(event, client.Failed):
            self.error = (event.code, event.message)
            if event.code in ("unreachable", client.STARTING):
                set_disconnected(event.message, event.code)
            self.done = True
        if self.done:
            discard = getattr(self.spec, "discard", None)  # a failed job's partial output (a dub's folder)
            if self.error is not None and discard is not None:
                try:
                    discard()
                except Exception:  # noqa: BLE001 - cleaning up must not hide the job's own error
                    traceback.print_exc()
            st.busy = any(not t.done for t in TASKS if t is not self)
            st.last_error = self.error[1] if self.error else ""
            st.last_report = self.summary
            _refresh_after(self)
        _redraw()


def drain() -> float | None:
    """The one timer: hands worker events to bpy on the main thread; stops when idle."""
    try:
        BOARD.drain()
    except Exception:  # keep draining the other jobs; the failing one is reported by its task
        traceback.print_exc()
    while True:
        try:
            ep, info_, err = _CHECK_RESULTS.get_nowait()
        except queue.Empty:
            break
        apply_status(ep, info_, err)
    for t in list(TASKS):
        try:
            t.poll()
        except Exception as e:  # a bug must end the task, never kill the drain timer
            traceback.print_exc()
            t.error, t.done = ("internal", f"add-on error: {type(e).__name__}: {e}"), True
    TASKS[:] = [t for t in TASKS if not t.done]
    return 0.1 if BOARD.jobs or TASKS or checks_running() else None


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(drain):
        bpy.app.timers.register(drain, first_interval=0.05, persistent=True)


def submit(job: client.Job, spec) -> Task:
    """Run `job` in the background; its events reach `spec` through the drain timer."""
    task = Task(job, spec)
    TASKS.append(task)
    BOARD.add(job, task.handle)
    ensure_timer()
    return task


def start(op, context, request: dict, spec, blocking: bool, timeout: float,
          on_frame=None, uploads: tuple = ()) -> set:
    """Start a backend job for operator `op`: blocking (scripts, background mode) or modal.
    `uploads` (client.Upload) are sent in chunks on the job's connection before the request."""
    job = client.Job(connection.endpoint(), request, on_frame=on_frame, uploads=uploads,
                     **connection.timeouts())
    st = connection.status()
    st.busy, st.progress, st.stage, st.last_error = True, 0.0, "connecting", ""
    if blocking or bpy.app.background or not context.window_manager.windows:
        task = Task(job, spec)
        client.run_blocking(job, task.handle, timeout=timeout or None)
        return finish(op, task)
    op._task = submit(job, spec)
    op._timer = context.window_manager.event_timer_add(0.1, window=context.window)
    context.window_manager.modal_handler_add(op)
    return {"RUNNING_MODAL"}


def finish(op, task: Task) -> set:
    """The outcome of a job, reported once."""
    connection.status().busy = any(not t.done for t in TASKS if t is not task)
    if task.error is not None:
        code, message = task.error
        return fail(op, "cancelled" if code == "cancelled" else message)
    return info(op, task.summary)


def cancel_all() -> None:
    BOARD.cancel_all()
    for t in TASKS:
        t.cancel()


# ---------------------------------------------------------------------------- local commands

class ProcessTask:
    """A local command (`flowvq actor learn`) as a subprocess: polled on the main thread by the
    drain timer; its stderr is read on a thread (only the last lines are kept, so the pipe never
    fills). `spec` gives `kind`, `progress()` -> (stage, fraction), `failure(tail)` -> message,
    `cancelled()` -> message, `apply()` -> summary (main thread), `refresh` (re-check the
    backend afterwards: the local one re-reads its actors folder on every hello)."""

    POLL_SECONDS = 1.0  # the stage is read from a file: once a second is plenty

    def __init__(self, proc: subprocess.Popen, spec):
        self.proc, self.spec = proc, spec
        self.started = time.monotonic()
        self.done, self.error, self.summary = False, None, ""
        self._cancelled = False
        self._tail: collections.deque = collections.deque(maxlen=40)
        self._last_poll = 0.0
        self._reader = threading.Thread(target=self._read, name="flowvq-command-log", daemon=True)
        self._reader.start()

    @property
    def kind(self) -> str:
        return self.spec.kind

    def _read(self) -> None:
        for line in self.proc.stderr:
            with _LOCK:
                self._tail.append(line.rstrip())

    def tail(self) -> list[str]:
        with _LOCK:
            return list(self._tail)

    def cancel(self) -> None:
        """Esc / Cancel: terminate the command (what it wrote so far stays, for resuming)."""
        if not self.done and self.proc.poll() is None:
            self._cancelled = True
            self.proc.terminate()

    def poll(self) -> None:
        if self.done:
            return
        now = time.monotonic()
        code = self.proc.poll()
        if code is None and now - self._last_poll < self.POLL_SECONDS:
            return
        self._last_poll = now
        st = connection.status()
        if code is None:
            from .actors import elapsed

            stage, fraction = self.spec.progress()
            st.progress, st.stage = fraction, f"{stage}, {elapsed(now - self.started)}"
            _redraw()
            return
        self._reader.join(2.0)  # the last lines (the error) are in
        if self._cancelled:
            self.error = ("stopped", self.spec.cancelled())
        elif code != 0:
            self.error = ("failed", self.spec.failure(code, self.tail()))
        else:
            try:
                self.summary = self.spec.apply()
            except (UserError, ValueError, KeyError, OSError) as e:
                self.error = ("bad_result", str(e))
        self.done = True
        st.busy = any(not t.done for t in TASKS if t is not self)
        st.last_error = self.error[1] if self.error else ""
        st.last_report = self.summary
        _refresh_after(self)
        _redraw()


def _refresh_after(task) -> None:
    """A job whose spec asks for it (`refresh`, e.g. a new actor to offer) re-checks the backend when it succeeds."""
    if task.error is None and getattr(task.spec, "refresh", False):
        refresh_backend(blocking=getattr(task.spec, "blocking", False))


def refresh_backend(blocking: bool) -> None:
    """Ask the connected backend again (its hello lists the actors anew); none connected: no-op."""
    if not connection.status().connected:
        return
    ep, times = connection.endpoint(), connection.timeouts()  # read here, not on the thread
    if blocking or bpy.app.background:
        apply_status(*connection.check_now(False, False, ep, times))
    else:
        run_check(lambda: connection.check_now(False, False, ep, times),
                  "Refreshing the backend...")


def start_process(op, context, cmd: list[str], spec, blocking: bool, timeout: float) -> set:
    """Run local command `cmd` for operator `op`: blocking (scripts, background mode) or modal."""
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1)
    except OSError as e:
        return fail(op, f"cannot start {cmd[0]}: {e}")
    task = ProcessTask(proc, spec)
    st = connection.status()
    st.busy, st.progress, st.stage, st.last_error = True, 0.0, "starting", ""
    TASKS.append(task)
    if blocking or bpy.app.background or not context.window_manager.windows:
        deadline = time.monotonic() + timeout if timeout else None
        while not task.done:
            if deadline is not None and time.monotonic() > deadline:
                task.cancel()
                deadline = None
            task.poll()
            time.sleep(0.1)
        TASKS.remove(task)
        return finish(op, task)
    ensure_timer()
    op._task = task
    op._timer = context.window_manager.event_timer_add(0.1, window=context.window)
    context.window_manager.modal_handler_add(op)
    return {"RUNNING_MODAL"}


class JobOperator:
    """Mixin: modal waiting for a Task, Esc cancels, status bar shows progress."""
    blocking: BoolProperty(name="Blocking", default=False, options={"SKIP_SAVE", "HIDDEN"},
                           description="Wait for the backend (scripts and tests)")
    timeout: FloatProperty(name="Timeout", default=0.0, min=0.0, options={"SKIP_SAVE", "HIDDEN"},
                           description="Blocking mode: cancel after this many seconds (0 = none)")

    def modal(self, context, event):
        task: Task | ProcessTask = self._task
        if event.type == "ESC" and event.value == "PRESS":
            task.cancel()
            return {"RUNNING_MODAL"}  # Esc is ours while the job runs (not stop-playback)
        if task.done:
            context.window_manager.event_timer_remove(self._timer)
            if context.workspace is not None:
                context.workspace.status_text_set(None)
            return finish(self, task)
        if event.type == "TIMER" and context.workspace is not None:
            st = connection.status()
            context.workspace.status_text_set(
                f"FlowVQ {task.kind}: {st.stage} {round(100 * st.progress)}%  "
                "(Esc to cancel)")
        return {"PASS_THROUGH"}


def shutdown() -> None:
    cancel_all()
    if bpy.app.timers.is_registered(drain):
        bpy.app.timers.unregister(drain)
