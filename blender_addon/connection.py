"""Where the backend is: preferences, the endpoint to use, and the local backend process.

Main-thread helpers (they read bpy preferences); the worker threads get plain values.
"""
from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import bpy

from . import client

ADDON = __package__
BACKEND_START_SECONDS = 120.0  # a cold start imports torch and may compile kernels


class UserError(Exception):
    """Something in the scene or settings stops an operator; shown as an error report."""


class LocalBackend:
    """The `flowvq serve` this Blender session started (guarded: watcher threads read it)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    @property
    def process(self) -> subprocess.Popen | None:
        with self._lock:
            return self._proc

    def running(self) -> bool:
        proc = self.process
        return proc is not None and proc.poll() is None

    def set(self, proc: subprocess.Popen | None) -> None:
        with self._lock:
            self._proc = proc

    def stop(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


LOCAL = LocalBackend()


def prefs():
    addon = bpy.context.preferences.addons.get(ADDON)
    return addon.preferences if addon is not None else None


def status():
    return bpy.context.window_manager.flowvq_status


def endpoint() -> client.Endpoint:
    p = prefs()
    if p is None:
        return client.Endpoint()
    if (p.connection == "AUTO" or LOCAL.running()) and status().endpoint:
        host, _, port = status().endpoint.rpartition(":")
        return client.Endpoint(host, int(port), p.token)
    return client.Endpoint(p.host, p.port, p.token)


def timeouts() -> dict:
    """The Job/probe timeouts from the preferences (connect, greeting, job silence)."""
    p = prefs()
    if p is None:
        return {}
    return {"connect_timeout": p.connect_timeout, "greeting_timeout": p.greeting_timeout,
            "idle_timeout": p.idle_timeout}


def backend_python(path: str) -> str:
    """An interpreter path from a file or a virtualenv folder setting."""
    p = Path(bpy.path.abspath(path)) if path else Path(sys.executable)
    if p.is_dir():
        for cand in (p / "bin" / "python", p / "Scripts" / "python.exe"):
            if cand.exists():
                return str(cand)
        raise UserError(f"{p} is a folder but not a virtualenv (no bin/python or "
                        "Scripts\\python.exe)")
    if not p.exists():
        raise UserError(f"backend interpreter {p} does not exist (set it in the add-on "
                        "preferences)")
    return str(p)


def actors_folder() -> str:
    """The folder of actor profiles (the preference; by default `actors` in the add-on's user
    folder of Blender's user data), created on demand. UserError if it cannot be."""
    p = prefs()
    if p is not None and p.actors_dir.strip():
        folder = Path(bpy.path.abspath(p.actors_dir.strip()))
    else:
        try:  # an extension: its own folder in Blender's user data (extensions/.user/...)
            folder = Path(bpy.utils.extension_path_user(ADDON, path="actors", create=False))
        except (ValueError, AttributeError):  # a legacy add-on install
            folder = Path(bpy.utils.user_resource("CONFIG", path="flowvq")) / "actors"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the actors folder {folder}: {e} (set Actors Folder in "
                        "the add-on preferences)") from None
    return str(folder)


def wait_for_listening(proc, lines: queue.Queue, timeout: float) -> str | None:
    """'host:port' from the backend's first `listening on` line; None if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                return None
            continue
        if line.startswith("listening on "):
            return line.split()[-1]
    return None


def split_hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


def check_now(auto: bool, lan: bool, manual: client.Endpoint, timeouts: dict):
    """(endpoint, ServerInfo or None, BackendError or None). Blocking: off the main thread in UI."""
    from . import discovery

    candidates = []
    if auto:
        candidates += [client.Endpoint(s.host, s.port, manual.token)
                       for s in discovery.discover(timeout=1.0, lan=lan)]
    candidates.append(manual)
    err = None
    for ep in candidates:
        try:
            return ep, client.probe(ep, timeouts.get("connect_timeout", client.CONNECT_TIMEOUT),
                                    timeouts.get("greeting_timeout", client.GREETING_TIMEOUT)), None
        except client.BackendError as e:
            err = e
    return manual, None, err
