"""Operators: thin. Collect settings, start a backend job, apply its result on the main thread.

The UI path never blocks: a `client.Job` talks to the backend on a worker thread, one
`bpy.app.timers` callback drains every job's events into bpy, and the operator stays modal
only to catch Esc and to report the outcome. With `blocking=True` (scripts, tests, and
automatically in background mode) the same events are drained synchronously instead.
"""
from __future__ import annotations

import hashlib
import os
import queue
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty

from . import client, discovery, plates, retarget, takes
from ._shared import channels

ADDON = __package__


# ---------------------------------------------------------------------------- settings

def prefs():
    addon = bpy.context.preferences.addons.get(ADDON)
    return addon.preferences if addon is not None else None


def status():
    return bpy.context.window_manager.flowvq_status


def endpoint() -> client.Endpoint:
    p = prefs()
    if p is None:
        return client.Endpoint()
    local = _LOCAL_BACKEND.get("process")
    local_running = local is not None and local.poll() is None
    if (p.connection == "AUTO" or local_running) and status().endpoint:
        host, _, port = status().endpoint.rpartition(":")
        return client.Endpoint(host, int(port), p.token)
    return client.Endpoint(p.host, p.port, p.token)


def _timeouts() -> dict:
    p = prefs()
    if p is None:
        return {}
    return {"connect_timeout": p.connect_timeout, "idle_timeout": p.idle_timeout}


def calibration_of(settings) -> retarget.Calibration:
    return retarget.Calibration(
        gains={r.name: r.gain for r in settings.calibration if r.gain != 1.0},
        offsets={r.name: r.offset for r in settings.calibration if r.offset != 0.0},
        mirror=settings.mirror, clamp=(0.0, 1.0) if settings.clamp else None)


def target_of(context):
    t = context.scene.flowvq.target
    if t is None and context.active_object is not None and context.active_object.type == "MESH":
        t = context.active_object
    return t


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


# ---------------------------------------------------------------------------- tasks

class UserError(Exception):
    """Something in the scene or settings stops an operator; shown as an error report."""


@dataclass(frozen=True)
class GenerateSpec:
    """Everything needed to apply a generate result, by name (no bpy objects kept)."""
    scene: str
    target: str
    request: dict
    frame_start: int
    pose: takes.PoseTarget
    calibration: retarget.Calibration

    def apply(self, result: dict) -> str:
        scene = bpy.data.scenes[self.scene]
        obj = bpy.data.objects.get(self.target)
        if obj is None:
            raise UserError(f"target '{self.target}' was deleted while generating")
        new = takes.takes_from_result(result, self.request)
        mapping = takes.mapping_for(obj, new[0].names, self.calibration.mirror)
        first = None
        for take in new:
            index = takes.add_take(scene, obj, take, self.frame_start, self.pose,
                                   self.calibration, mapping)
            first = index if first is None else first
        takes.activate(obj, first)
        names = ", ".join(obj.flowvq.takes[i].name for i in range(first, first + len(new)))
        return f"{len(new)} take(s) on '{obj.name}': {names}. {mapping.summary()}"


@dataclass(frozen=True)
class FaceModelSpec:
    scene: str
    name: str
    scale: float = 1.0

    def apply(self, result: dict) -> str:
        from . import head

        scene = bpy.data.scenes[self.scene]
        obj = head.build_head(self.name, result["neutral"], result["deltas"], result["names"],
                              result["faces"], result.get("uv"), result.get("has_channel"),
                              self.scale, scene.collection)
        scene.flowvq.target = obj
        missing = [n for n, ok in zip(result["names"], result.get("has_channel", [])) if not ok]
        note = f"; channels the model has no shape for yet: {', '.join(missing)}" if missing \
            else ""
        return f"added '{obj.name}' with {len(result['names'])} shape keys{note}"


@dataclass(frozen=True)
class PlateSpec:
    scene: str
    folder: str
    frame_start: int
    files: list = field(default_factory=list)  # filled from frame events (main thread)

    def apply(self, result: dict) -> str:
        scene = bpy.data.scenes[self.scene]
        strip = plates.add_image_strip(scene, self.files, self.frame_start)
        return (f"{len(self.files)} plate frames ({result.get('width')}x{result.get('height')}) "
                f"in {self.folder}; image strip '{strip.name}' on channel {strip.channel}")


@dataclass
class Task:
    """A job plus what to do with its result; its handler runs on the main thread only."""
    job: client.Job
    spec: object
    done: bool = False
    error: tuple[str, str] | None = None
    summary: str = ""

    def handle(self, event) -> None:
        st = status()
        if isinstance(event, client.Connected):
            _set_connected(event.info, self.job.endpoint)
        elif isinstance(event, client.Progress):
            st.progress, st.stage = event.fraction, event.stage
        elif isinstance(event, client.Frame):
            if isinstance(self.spec, PlateSpec):
                self.spec.files.append(event.payload)
            st.progress = (event.index + 1) / max(event.total, 1)
            st.stage = f"frame {event.index + 1}/{event.total}"
        elif isinstance(event, client.Result):
            try:
                self.summary = self.spec.apply(event.message)
            except (UserError, takes.TakeError, ValueError, KeyError) as e:
                self.error = ("bad_result", str(e))
            except Exception as e:  # a bug must end the task, never kill the drain timer
                traceback.print_exc()
                self.error = ("internal", f"add-on error: {type(e).__name__}: {e}")
            self.done = True
        elif isinstance(event, client.Failed):
            self.error = (event.code, event.message)
            if event.code == "unreachable":
                _set_disconnected(event.message)
            self.done = True
        if self.done:
            st.busy = any(not t.done for t in TASKS if t is not self)
            st.last_error = self.error[1] if self.error else ""
            st.last_report = self.summary
        _redraw()


TASKS: list[Task] = []
BOARD = client.JobBoard()
_STATUS_RESULTS: queue.Queue = queue.Queue()


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "SEQUENCE_EDITOR"):
                area.tag_redraw()


def _drain() -> float | None:
    """The one timer: hands worker events to bpy on the main thread; stops when idle."""
    try:
        BOARD.drain()
    except Exception:  # keep draining the other jobs; the failing one is reported by its task
        traceback.print_exc()
    while True:
        try:
            ep, info, err = _STATUS_RESULTS.get_nowait()
        except queue.Empty:
            break
        _apply_status(ep, info, err)
    TASKS[:] = [t for t in TASKS if not t.done]
    return 0.1 if BOARD.jobs or TASKS or _CHECKS_RUNNING else None


def _ensure_timer() -> None:
    if not bpy.app.timers.is_registered(_drain):
        bpy.app.timers.register(_drain, first_interval=0.05, persistent=True)


def _set_connected(info: client.ServerInfo, ep: client.Endpoint) -> None:
    st = status()
    st.connected = True
    st.endpoint = str(ep)
    st.server, st.device = info.server, info.device
    st.models = ", ".join(f"{k}: {v.get('checkpoint', v) if isinstance(v, dict) else v}"
                          for k, v in info.models.items())
    st.unavailable = "; ".join(f"{k}: {why}" for k, why in info.not_implemented.items())
    st.text = f"Connected to {info.server} at {ep} ({info.device})"


def _set_disconnected(message: str) -> None:
    st = status()
    st.connected = False
    st.server = st.device = st.models = st.unavailable = ""
    st.text = f"Not connected: {message}"


def _apply_status(ep, info, err) -> None:
    if info is not None:
        _set_connected(info, ep)
    else:
        _set_disconnected(err)
    _redraw()


_CHECKS_RUNNING = 0


def check_backend_now(auto: bool, lan: bool, manual: client.Endpoint, timeout: float):
    """(endpoint, ServerInfo or None, error or None). Blocking: run off the main thread in UI."""
    candidates = []
    if auto:
        candidates += [client.Endpoint(s.host, s.port, manual.token)
                       for s in discovery.discover(timeout=1.0, lan=lan)]
    candidates.append(manual)
    err = ""
    for ep in candidates:
        try:
            return ep, client.probe(ep, timeout), None
        except client.BackendError as e:
            err = e.message
    return manual, None, err


def _start_task(op, context, request: dict, spec, blocking: bool, timeout: float,
                on_frame=None):
    job = client.Job(endpoint(), request, on_frame=on_frame, **_timeouts())
    task = Task(job, spec)
    st = status()
    st.busy, st.progress, st.stage, st.last_error = True, 0.0, "connecting", ""
    if blocking or bpy.app.background or not context.window_manager.windows:
        client.run_blocking(job, task.handle, timeout=timeout or None)
        return _finish(op, task)
    TASKS.append(task)
    BOARD.add(job, task.handle)
    _ensure_timer()
    op._task = task
    op._timer = context.window_manager.event_timer_add(0.1, window=context.window)
    context.window_manager.modal_handler_add(op)
    return {"RUNNING_MODAL"}


def _finish(op, task: Task) -> set:
    status().busy = any(not t.done for t in TASKS if t is not task)
    if task.error is not None:
        code, message = task.error
        op.report({"ERROR"}, f"FlowVQ: {message}" if code != "cancelled"
                  else "FlowVQ: cancelled")
        return {"CANCELLED"}
    op.report({"INFO"}, f"FlowVQ: {task.summary}")
    return {"FINISHED"}


class _JobOperator:
    """Mixin: modal waiting for a Task, Esc cancels, status bar shows progress."""
    blocking: BoolProperty(name="Blocking", default=False, options={"SKIP_SAVE", "HIDDEN"},
                           description="Wait for the backend (scripts and tests)")
    timeout: FloatProperty(name="Timeout", default=0.0, min=0.0, options={"SKIP_SAVE", "HIDDEN"},
                           description="Blocking mode: cancel after this many seconds (0 = none)")

    def modal(self, context, event):
        task: Task = self._task
        if event.type == "ESC" and event.value == "PRESS":
            task.job.cancel()
            return {"RUNNING_MODAL"}  # Esc is ours while the job runs (not stop-playback)
        if task.done:
            context.window_manager.event_timer_remove(self._timer)
            if context.workspace is not None:
                context.workspace.status_text_set(None)
            return _finish(self, task)
        if event.type == "TIMER" and context.workspace is not None:
            st = status()
            context.workspace.status_text_set(
                f"FlowVQ {task.job.kind}: {st.stage} {round(100 * st.progress)}%  "
                "(Esc to cancel)")
        return {"PASS_THROUGH"}

    def fail(self, message: str) -> set:
        self.report({"ERROR"}, f"FlowVQ: {message}")
        return {"CANCELLED"}


# ---------------------------------------------------------------------------- backend

class FLOWVQ_OT_check_backend(bpy.types.Operator):
    """Look for a FlowVQ backend and show its status"""
    bl_idname = "flowvq.check_backend"
    bl_label = "Check Backend"
    blocking: BoolProperty(default=False, options={"SKIP_SAVE", "HIDDEN"})

    def execute(self, context):
        global _CHECKS_RUNNING
        p = prefs()
        auto = p is not None and p.connection == "AUTO"
        lan = p is not None and p.lan_discovery
        manual = client.Endpoint(p.host, p.port, p.token) if p else client.Endpoint()
        timeout = p.connect_timeout if p else 3.0
        if self.blocking or bpy.app.background:
            ep, info, err = check_backend_now(auto, lan, manual, timeout)
            _apply_status(ep, info, err)
            if info is None:
                self.report({"WARNING"}, f"FlowVQ: {err}")
            return {"FINISHED"}

        def work():
            global _CHECKS_RUNNING
            try:
                _STATUS_RESULTS.put(check_backend_now(auto, lan, manual, timeout))
            finally:
                _CHECKS_RUNNING -= 1

        _CHECKS_RUNNING += 1
        status().text = "Checking for a backend..."
        threading.Thread(target=work, name="flowvq-status", daemon=True).start()
        _ensure_timer()
        return {"FINISHED"}


_LOCAL_BACKEND: dict = {}  # "process": Popen of the backend this session started


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


class FLOWVQ_OT_start_backend(bpy.types.Operator):
    """Launch `flowvq serve` with the interpreter configured in the add-on preferences"""
    bl_idname = "flowvq.start_backend"
    bl_label = "Start Local Backend"
    blocking: BoolProperty(default=False, options={"SKIP_SAVE", "HIDDEN"})

    def execute(self, context):
        p = prefs()
        proc = _LOCAL_BACKEND.get("process")
        if proc is not None and proc.poll() is None:
            self.report({"INFO"}, "FlowVQ: the local backend is already running")
            return {"CANCELLED"}
        try:
            python = backend_python(p.backend_python if p else "")
        except UserError as e:
            self.report({"ERROR"}, f"FlowVQ: {e}")
            return {"CANCELLED"}
        port = p.port if p else client.DEFAULT_PORT
        cmd = [python, "-m", "flowvq", "serve", "--port", str(port)]
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, bufsize=1)
        except OSError as e:
            self.report({"ERROR"}, f"FlowVQ: cannot start {python}: {e}")
            return {"CANCELLED"}
        _LOCAL_BACKEND["process"] = proc
        lines: queue.Queue = queue.Queue()

        def read():  # the first line says where it listens; the rest is drained so it never stalls
            for line in proc.stdout:
                lines.put(line.rstrip())

        threading.Thread(target=read, name="flowvq-backend-log", daemon=True).start()
        status().text = "Starting the local backend..."
        failure = (f"the local backend did not start; run `{' '.join(cmd)}` in a terminal "
                   "to see why")
        token = p.token if p else ""  # read here: worker threads never touch bpy
        if self.blocking or bpy.app.background:
            where = _wait_for_listening(proc, lines, BACKEND_START_SECONDS)
            if where is None:
                self.report({"ERROR"}, f"FlowVQ: {failure} (exit code {proc.poll()})")
                return {"CANCELLED"}
            status().endpoint = where
            _apply_status(*_probe_started(where, token))
            return {"FINISHED"}

        def watch():  # off the main thread: the result reaches bpy through the drain timer
            global _CHECKS_RUNNING
            try:
                where = _wait_for_listening(proc, lines, BACKEND_START_SECONDS)
                _STATUS_RESULTS.put(_probe_started(where, token) if where
                                    else (client.Endpoint(), None, failure))
            finally:
                _CHECKS_RUNNING -= 1

        global _CHECKS_RUNNING
        _CHECKS_RUNNING += 1
        threading.Thread(target=watch, name="flowvq-backend-start", daemon=True).start()
        _ensure_timer()
        return {"FINISHED"}


BACKEND_START_SECONDS = 120.0  # a cold start imports torch and may compile kernels


def _wait_for_listening(proc, lines: queue.Queue, timeout: float) -> str | None:
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


def _probe_started(where: str, token: str):
    ep = client.Endpoint(*_split_hostport(where), token)
    try:
        return ep, client.probe(ep), None
    except client.BackendError as e:
        return ep, None, e.message


def _split_hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


class FLOWVQ_OT_stop_backend(bpy.types.Operator):
    """Stop the backend this Blender session started"""
    bl_idname = "flowvq.stop_backend"
    bl_label = "Stop Local Backend"

    def execute(self, context):
        stop_local_backend()
        _set_disconnected("the local backend was stopped")
        return {"FINISHED"}


def stop_local_backend() -> None:
    proc = _LOCAL_BACKEND.pop("process", None)
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


class FLOWVQ_OT_cancel(bpy.types.Operator):
    """Cancel every FlowVQ job in flight (the backend stops them)"""
    bl_idname = "flowvq.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        BOARD.cancel_all()
        for t in TASKS:
            t.job.cancel()
        return {"FINISHED"}


# ---------------------------------------------------------------------------- generate

def audio_source(scene) -> tuple[bytes, int, str]:
    """(audio file bytes, first frame, label) from the active sound strip or the file setting."""
    s = scene.flowvq
    if s.audio_source == "FILE":
        path = bpy.path.abspath(s.audio_file)
        if not s.audio_file or not os.path.isfile(path):
            raise UserError(f"audio file '{s.audio_file}' does not exist")
        return Path(path).read_bytes(), scene.frame_start, os.path.basename(path)
    se = scene.sequence_editor
    strips = [st for st in (se.strips_all if se else ()) if st.type == "SOUND"]
    strip = se.active_strip if se is not None else None
    if strip is None or strip.type != "SOUND":
        if len(strips) != 1:
            raise UserError("no active sound strip: select one in the Video Sequencer "
                            "(or set Audio to File)" if not strips else
                            "several sound strips and none is active: click the one to use")
        strip = strips[0]
    sound = strip.sound
    if sound.packed_file is not None:
        data = bytes(sound.packed_file.data)
    else:
        path = bpy.path.abspath(sound.filepath)
        if not os.path.isfile(path):
            raise UserError(f"sound strip '{strip.name}' points to a missing file {path}")
        data = Path(path).read_bytes()
    return data, int(strip.frame_start), strip.name


class FLOWVQ_OT_generate(_JobOperator, bpy.types.Operator):
    """Generate takes from the audio: one new Action per take on the target's shape keys"""
    bl_idname = "flowvq.generate"
    bl_label = "Generate Takes"

    def execute(self, context):
        scene = context.scene
        s = scene.flowvq
        obj = target_of(context)
        try:
            if obj is None:
                raise UserError("no target: pick a mesh with ARKit-named shape keys, or add "
                                "the FlowVQ head")
            if not takes.shape_keys_of(obj):
                raise UserError(f"'{obj.name}' has no shape keys: add the FlowVQ head, or pick "
                                "a mesh with ARKit-named shape keys")
            mapping = takes.mapping_for(obj, channels.EXPRESSION_NAMES, s.mirror)
            if not mapping.drives:
                raise UserError(f"none of '{obj.name}''s shape keys has an ARKit name")
            audio, frame_start, label = audio_source(scene)
            request = {"type": "generate", "audio": audio, "takes": s.takes, "seed": s.seed,
                       "fps": scene_fps(scene), "temperature": s.temperature, "blinks": s.blinks,
                       "phone_guidance": s.phone_guidance, "intensity": s.intensity, "emotion": s.emotion}
            if s.emotion_source == "IMAGE":
                path = bpy.path.abspath(s.reference_image)
                if not os.path.isfile(path):
                    raise UserError(f"reference image '{s.reference_image}' does not exist")
                request["reference_image"] = Path(path).read_bytes()
                request["emotion"] = "talking"
            pose_object = s.pose_object.name if s.pose_object is not None else ""
            pose = takes.PoseTarget(s.pose_mode, pose_object, s.pose_bone, s.translation_scale)
            takes._pose_owner(obj, pose)  # fail now, not after minutes of generating
        except (UserError, takes.TakeError) as e:
            return self.fail(str(e))
        obj.flowvq.last_mapping = mapping.summary()
        small = {k: v for k, v in request.items() if k not in ("audio", "reference_image")}
        small["audio_label"] = label
        if "reference_image" in request:  # takes are named for where the emotion came from
            small["emotion_label"] = "reference"
        small["audio_sha256"] = hashlib.sha256(audio).hexdigest()
        spec = GenerateSpec(scene.name, obj.name, small, frame_start, pose, calibration_of(s))
        return _start_task(self, context, request, spec, self.blocking, self.timeout)


class FLOWVQ_OT_add_head(_JobOperator, bpy.types.Operator):
    """Add the backend's default head: a mesh with the 64 FlowVQ/ARKit shape keys"""
    bl_idname = "flowvq.add_head"
    bl_label = "Add FlowVQ Head"
    # the face model is in centimetres; Blender scenes are in metres
    scale: FloatProperty(name="Scale", default=0.01, min=1e-5,
                         description="Model units to Blender units (0.01: centimetres to metres)")

    def execute(self, context):
        spec = FaceModelSpec(context.scene.name, "FlowVQ Head", self.scale)
        return _start_task(self, context, {"type": "face_model", "model": "default"}, spec,
                           self.blocking, self.timeout)


class FLOWVQ_OT_render_plates(_JobOperator, bpy.types.Operator):
    """Render the active take from the portrait into an image sequence and load it in the VSE"""
    bl_idname = "flowvq.render_plates"
    bl_label = "Render Plates"
    max_side: IntProperty(name="Max Side", default=0, min=0, options={"SKIP_SAVE"},
                          description="0 = the portrait's resolution")

    def execute(self, context):
        scene = context.scene
        s = scene.flowvq
        obj = target_of(context)
        try:
            if obj is None or not (0 <= obj.flowvq.active_take < len(obj.flowvq.takes)):
                raise UserError("no active take: generate takes first")
            item = obj.flowvq.takes[obj.flowvq.active_take]
            exp, pose = takes.raw_curves(item.shape_action)
            if pose is None:
                raise UserError("the active take has no head pose curves")
            portrait = bpy.path.abspath(s.portrait)
            if not os.path.isfile(portrait):
                raise UserError(f"portrait '{s.portrait}' does not exist")
            folder = Path(bpy.path.abspath(s.plate_dir)) / item.name.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
        except (UserError, takes.TakeError, OSError) as e:
            return self.fail(str(e))
        request = {"type": "render", "portrait": Path(portrait).read_bytes(), "expression": exp,
                   "pose": pose, "fps": float(item.fps), "format": s.plate_format,
                   "max_side": self.max_side}
        spec = PlateSpec(scene.name, str(folder), item.frame_start)
        return _start_task(self, context, request, spec, self.blocking, self.timeout,
                           on_frame=plates.FrameWriter(str(folder)))


# ---------------------------------------------------------------------------- takes

class _TakeOperator:
    """Shared body of the take operators: find the target's takes, run one step, report errors."""

    def execute(self, context):
        obj = target_of(context)
        if obj is None or not len(obj.flowvq.takes):
            self.report({"ERROR"}, "FlowVQ: the target has no takes")
            return {"CANCELLED"}
        try:
            self.run(obj)
        except takes.TakeError as e:
            self.report({"ERROR"}, f"FlowVQ: {e}")
            return {"CANCELLED"}
        return {"FINISHED"}

    def chosen_index(self, obj) -> int:
        return self.index if self.index >= 0 else obj.flowvq.active_take


class FLOWVQ_OT_take_activate(_TakeOperator, bpy.types.Operator):
    """Audition this take: make its Actions the active ones"""
    bl_idname = "flowvq.take_activate"
    bl_label = "Audition Take"
    index: IntProperty(default=-1)

    def run(self, obj):
        takes.activate(obj, self.chosen_index(obj))


class FLOWVQ_OT_take_delete(_TakeOperator, bpy.types.Operator):
    """Delete this take and its Actions"""
    bl_idname = "flowvq.take_delete"
    bl_label = "Delete Take"
    index: IntProperty(default=-1)

    def run(self, obj):
        takes.delete(obj, self.chosen_index(obj))


class FLOWVQ_OT_take_push_nla(_TakeOperator, bpy.types.Operator):
    """Push the kept takes (all, if none is kept) to NLA tracks, blended by their weights"""
    bl_idname = "flowvq.take_push_nla"
    bl_label = "Push to NLA"

    def run(self, obj):
        n = takes.push_to_nla(obj, takes.chosen(obj))
        self.report({"INFO"}, f"FlowVQ: {n} take(s) pushed to NLA tracks")


class FLOWVQ_OT_take_bake(_TakeOperator, bpy.types.Operator):
    """Bake the kept takes (all, if none is kept) into one Action, for export"""
    bl_idname = "flowvq.take_bake"
    bl_label = "Bake to One Action"

    def run(self, obj):
        chosen = [i for i in takes.chosen(obj) if not obj.flowvq.takes[i].baked] \
            or takes.chosen(obj)
        index = takes.bake(obj, chosen)
        self.report({"INFO"}, f"FlowVQ: baked {len(chosen)} take(s) into "
                              f"'{obj.flowvq.takes[index].name}'")


class FLOWVQ_OT_take_restore(_TakeOperator, bpy.types.Operator):
    """Assign back the Actions the target had before the first take"""
    bl_idname = "flowvq.take_restore"
    bl_label = "Restore Original"

    def run(self, obj):
        takes.restore_original(obj)


# ---------------------------------------------------------------------------- target

class FLOWVQ_OT_check_mapping(bpy.types.Operator):
    """List which channels reach which shape keys of the target, and which find none"""
    bl_idname = "flowvq.check_mapping"
    bl_label = "Check Mapping"

    def execute(self, context):
        obj = target_of(context)
        if obj is None:
            self.report({"ERROR"}, "FlowVQ: no target mesh")
            return {"CANCELLED"}
        mapping = takes.mapping_for(obj, channels.EXPRESSION_NAMES, context.scene.flowvq.mirror)
        obj.flowvq.last_mapping = mapping.summary()
        self.report({"INFO"}, f"FlowVQ: {mapping.summary()}")
        return {"FINISHED"}


class FLOWVQ_OT_calibration_reset(bpy.types.Operator):
    """Fill the calibration table with every channel at gain 1, offset 0"""
    bl_idname = "flowvq.calibration_reset"
    bl_label = "Reset Calibration"

    def execute(self, context):
        table = context.scene.flowvq.calibration
        table.clear()
        for name in channels.EXPRESSION_NAMES:
            row = table.add()
            row.name = name
        return {"FINISHED"}


class FLOWVQ_OT_calibration_save(bpy.types.Operator):
    """Save the calibration table as a JSON preset"""
    bl_idname = "flowvq.calibration_save"
    bl_label = "Save Calibration Preset"
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        self.filepath = self.filepath or "flowvq_calibration.json"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            calibration_of(context.scene.flowvq).save(bpy.path.abspath(self.filepath))
        except OSError as e:
            self.report({"ERROR"}, f"FlowVQ: cannot write {self.filepath}: {e.strerror or e}")
            return {"CANCELLED"}
        return {"FINISHED"}


class FLOWVQ_OT_calibration_load(bpy.types.Operator):
    """Load a JSON calibration preset into the table"""
    bl_idname = "flowvq.calibration_load"
    bl_label = "Load Calibration Preset"
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            cal = retarget.Calibration.load(bpy.path.abspath(self.filepath))
        except (OSError, ValueError) as e:
            self.report({"ERROR"}, f"FlowVQ: {e}")
            return {"CANCELLED"}
        s = context.scene.flowvq
        bpy.ops.flowvq.calibration_reset()
        for row in s.calibration:
            row.gain = cal.gains.get(row.name, 1.0)
            row.offset = cal.offsets.get(row.name, 0.0)
        s.mirror, s.clamp = cal.mirror, cal.clamp is not None
        return {"FINISHED"}


classes = (
    FLOWVQ_OT_check_backend, FLOWVQ_OT_start_backend, FLOWVQ_OT_stop_backend, FLOWVQ_OT_cancel,
    FLOWVQ_OT_generate, FLOWVQ_OT_add_head, FLOWVQ_OT_render_plates,
    FLOWVQ_OT_take_activate, FLOWVQ_OT_take_delete, FLOWVQ_OT_take_push_nla,
    FLOWVQ_OT_take_bake, FLOWVQ_OT_take_restore,
    FLOWVQ_OT_check_mapping, FLOWVQ_OT_calibration_reset, FLOWVQ_OT_calibration_save,
    FLOWVQ_OT_calibration_load,
)


AUTO_CHECK_SECONDS = 15.0


def _auto_check() -> float | None:
    """Keeps the panel's backend status fresh in the UI (never in background mode)."""
    if bpy.app.background:
        return None
    if not _CHECKS_RUNNING and not status().busy:
        try:
            bpy.ops.flowvq.check_backend()
        except RuntimeError:  # no valid context at this moment: try at the next tick
            pass
    return AUTO_CHECK_SECONDS


def startup() -> None:
    if not bpy.app.background and not bpy.app.timers.is_registered(_auto_check):
        bpy.app.timers.register(_auto_check, first_interval=1.0, persistent=True)


def shutdown() -> None:
    """On unregister: cancel jobs, stop the timers and the backend this session started."""
    BOARD.cancel_all()
    for timer in (_drain, _auto_check):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    stop_local_backend()
