"""Operators that find, start, stop and cancel the backend."""
from __future__ import annotations

import queue
import subprocess
import threading

import bpy
from bpy.props import BoolProperty

from . import client, connection, tasks
from .connection import LOCAL, UserError


def _settings():
    p = connection.prefs()
    auto = p is not None and p.connection == "AUTO"
    lan = p is not None and p.lan_discovery
    manual = client.Endpoint(p.host, p.port, p.token) if p else client.Endpoint()
    return auto, lan, manual, connection.timeouts()


class FLOWVQ_OT_check_backend(bpy.types.Operator):
    """Look for a FlowVQ backend and show its status"""
    bl_idname = "flowvq.check_backend"
    bl_label = "Check Backend"
    blocking: BoolProperty(default=False, options={"SKIP_SAVE", "HIDDEN"})

    def execute(self, context):
        auto, lan, manual, timeouts = _settings()  # read here: worker threads never touch bpy
        if self.blocking or bpy.app.background:
            ep, info, err = connection.check_now(auto, lan, manual, timeouts)
            tasks.apply_status(ep, info, err)
            if info is None:
                return tasks.info(self, connection.status().text, "WARNING")
            return {"FINISHED"}
        tasks.run_check(lambda: connection.check_now(auto, lan, manual, timeouts),
                        "Checking for a backend...")
        return {"FINISHED"}


def _probe_started(where: str, token: str, timeouts: dict):
    ep = client.Endpoint(*connection.split_hostport(where), token)
    try:
        return ep, client.probe(ep, timeouts.get("connect_timeout", client.CONNECT_TIMEOUT),
                                timeouts.get("greeting_timeout", client.GREETING_TIMEOUT)), None
    except client.BackendError as e:
        return ep, None, e


class FLOWVQ_OT_start_backend(bpy.types.Operator):
    """Launch `flowvq serve` with the interpreter configured in the add-on preferences"""
    bl_idname = "flowvq.start_backend"
    bl_label = "Start Local Backend"
    blocking: BoolProperty(default=False, options={"SKIP_SAVE", "HIDDEN"})

    def execute(self, context):
        p = connection.prefs()
        if LOCAL.running():
            tasks.info(self, "the local backend is already running")
            return {"CANCELLED"}
        try:
            python = connection.backend_python(p.backend_python if p else "")
            actors = connection.actors_folder()
        except UserError as e:
            return tasks.fail(self, str(e))
        port = p.port if p else client.DEFAULT_PORT
        # the actor profiles Learn Actor writes are offered (re-read at every hello)
        cmd = [python, "-m", "flowvq", "serve", "--port", str(port), "--actors", actors]
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, bufsize=1)
        except OSError as e:
            return tasks.fail(self, f"cannot start {python}: {e}")
        LOCAL.set(proc)
        lines: queue.Queue = queue.Queue()

        def read():  # the first line says where it listens; the rest is drained so it never stalls
            for line in proc.stdout:
                lines.put(line.rstrip())

        threading.Thread(target=read, name="flowvq-backend-log", daemon=True).start()
        tasks.set_pending("Backend starting...")
        failure = (f"the local backend did not start; run `{' '.join(cmd)}` in a terminal "
                   "to see why")
        token = p.token if p else ""  # read here: worker threads never touch bpy
        timeouts = connection.timeouts()
        if self.blocking or bpy.app.background:
            where = connection.wait_for_listening(proc, lines, connection.BACKEND_START_SECONDS)
            if where is None:
                return tasks.fail(self, f"{failure} (exit code {proc.poll()})")
            connection.status().endpoint = where
            tasks.apply_status(*_probe_started(where, token, timeouts))
            return {"FINISHED"}

        def watch():  # off the main thread: the result reaches bpy through the drain timer
            where = connection.wait_for_listening(proc, lines, connection.BACKEND_START_SECONDS)
            return _probe_started(where, token, timeouts) if where \
                else (client.Endpoint(), None, failure)

        tasks.run_check(watch, "Backend starting...")
        return {"FINISHED"}


class FLOWVQ_OT_stop_backend(bpy.types.Operator):
    """Stop the backend this Blender session started"""
    bl_idname = "flowvq.stop_backend"
    bl_label = "Stop Local Backend"

    def execute(self, context):
        LOCAL.stop()
        tasks.set_disconnected("the local backend was stopped")
        return {"FINISHED"}


class FLOWVQ_OT_cancel(bpy.types.Operator):
    """Cancel every FlowVQ job in flight (the backend stops them)"""
    bl_idname = "flowvq.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        tasks.cancel_all()
        return {"FINISHED"}


classes = (FLOWVQ_OT_check_backend, FLOWVQ_OT_start_backend, FLOWVQ_OT_stop_backend,
           FLOWVQ_OT_cancel)
