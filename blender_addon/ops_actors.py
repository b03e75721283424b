"""Learn an actor profile from movie strips (or a video file): `flowvq actor learn` in the
background into the add-on's actors folder (which the local backend it starts serves), or, connected
to a backend it did not start, a `learn_actor` request with the footage uploaded (the backend learns
into its own --actors folder); the selector of actors lives in the Generate panel (properties.actor_choice)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

import bpy
from bpy.props import StringProperty

from . import actors, client, connection, tasks
from ._shared import protocol
from .connection import UserError


def movie_strip(scene):
    """The active movie strip of the Video Sequencer, or the only one; None if there is none."""
    se = scene.sequence_editor
    if se is None:
        return None
    strip = se.active_strip
    if strip is not None and strip.type == "MOVIE":
        return strip
    movies = [s for s in se.strips_all if s.type == "MOVIE"]
    return movies[0] if len(movies) == 1 else None


def movie_strips(scene) -> list:
    """The footage's strips: the selected movie strips when there are two or more (an interview and
    a screen test of one person: learned together, each recording at its own sync), in the order they
    sit in the timeline, else [movie_strip(scene)]; [] if there is none."""
    se = scene.sequence_editor
    if se is None:
        return []
    chosen = sorted((s for s in se.strips_all if s.type == "MOVIE" and s.select),
                    key=lambda s: (s.frame_final_start, s.channel))
    if len(chosen) >= 2:
        return chosen
    strip = movie_strip(scene)
    return [strip] if strip is not None else []


def videos_of(scene, filepath: str) -> list[str]:
    """The footage: the operator's file if given, else the files of movie_strips(scene), each once
    (strips cut from one file are one recording: the learn reads whole files)."""
    if filepath:
        path = bpy.path.abspath(filepath)
        if not os.path.isfile(path):
            raise UserError(f"video '{filepath}' does not exist")
        return [path]
    strips = movie_strips(scene)
    if not strips:
        raise UserError("no movie strip: select the footage's movie strip(s) in the Video "
                        "Sequencer, or pick a video file")
    paths, seen = [], set()
    for strip in strips:
        path = bpy.path.abspath(strip.filepath)
        if not os.path.isfile(path):
            raise UserError(f"movie strip '{strip.name}' points to a missing file {path}")
        if os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            paths.append(path)
    return paths


@dataclass(frozen=True)
class LearnSpec:
    """How a running `flowvq actor learn` is shown and what its end means (no bpy objects)."""
    name: str
    actor_dir: str
    command: str
    started: float  # time.monotonic() at the start
    blocking: bool = False
    refresh: bool = True  # re-check the backend: the local one then offers the new actor
    videos: int = 1  # how many recordings: each is tracked in its own stage

    @property
    def kind(self) -> str:
        return f"learn actor {self.name}"

    def progress(self) -> tuple[str, float]:
        return actors.learn_stage(self.actor_dir, self.videos)

    def failure(self, code: int, tail: list[str]) -> str:
        said = actors.error_line(tail)
        if said:
            return f"Learn Actor '{self.name}': {said}"
        last = " | ".join(tail[-3:]) or "no output"
        return (f"Learn Actor '{self.name}' failed (exit status {code}): {last}; run "
                f"`{self.command}` in a terminal to see why")

    def cancelled(self) -> str:
        return (f"Learn Actor '{self.name}' cancelled; its work so far is kept in "
                f"{self.actor_dir}: Learn Actor again with the same name and footage resumes")

    def apply(self) -> str:
        return actors.learned_summary(self.actor_dir, self.started)


@dataclass(frozen=True)
class RemoteLearnSpec:
    """A `learn_actor` request to a backend this add-on did not start (another machine, or a
    `flowvq serve --actors DIR` of its own): the footage is uploaded, the backend learns into its DIR."""
    name: str
    videos: tuple[str, ...]
    blocking: bool = False
    refresh: bool = True  # the backend's next hello offers the new actor

    @property
    def kind(self) -> str:
        return f"learn actor {self.name}"

    def apply(self, result: dict) -> str:
        actor = result.get("actor") or {}
        return (f"learned actor '{actor.get('id', self.name)}' on the backend from "
                f"{', '.join(os.path.basename(v) for v in self.videos)}"
                f"{actors.fit_text(actor.get('fit'))}")


def remote_learning(st) -> bool:
    """True when Learn Actor goes over the protocol: connected to a backend this add-on did not start."""
    return bool(st.connected) and not connection.LOCAL.running()


class FLOWVQ_OT_learn_actor(tasks.JobOperator, bpy.types.Operator):
    """Learn an actor profile from footage of one person speaking with their own voice (the
    active movie strip, the selected movie strips, or a video file): runs `flowvq actor learn` in
    the background (minutes)"""
    bl_idname = "flowvq.learn_actor"
    bl_label = "Learn Actor"

    filepath: StringProperty(name="Video", subtype="FILE_PATH", options={"SKIP_SAVE"},
                             description="The footage (default: the active movie strip, or the "
                                         "panel's Video)")
    actor_name: StringProperty(name="Actor Name", options={"SKIP_SAVE"},
                               description="The new actor's id (default: the panel's Actor Name)")
    filter_glob: StringProperty(default="*" + ";*".join(actors.VIDEO_EXTENSIONS),
                                options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        s = context.scene.flowvq
        if not self.filepath and not s.learn_video and not movie_strips(context.scene):
            context.window_manager.fileselect_add(self)  # no strip: pick the footage
            return {"RUNNING_MODAL"}
        return self.execute(context)

    def execute(self, context):
        scene = context.scene
        s = scene.flowvq
        p = connection.prefs()
        try:
            name = actors.check_name(self.actor_name or s.learn_name)
            videos = videos_of(scene, self.filepath or s.learn_video)
            python = connection.backend_python(p.backend_python if p else "")
            actor_dir = os.path.join(connection.actors_folder(), name)
        except UserError as e:
            return tasks.fail(self, str(e))
        except protocol.ProtocolError as e:
            return tasks.fail(self, f"actor name: {e.message}")
        st = connection.status()
        if remote_learning(st):  # its actors folder is the backend's, not ours: upload the footage
            if "learn_actor:" in st.unavailable:
                return tasks.fail(self, f"the backend at {st.endpoint} cannot learn actors (started without "
                                        "--actors DIR)")
            ups = tuple(client.Upload(f"footage{k}", os.path.basename(v), path=v) for k, v in enumerate(videos))
            request = {"type": "learn_actor", "uploads": [u.id for u in ups], "name": name,
                       "mouth_bank": s.learn_mouth_bank}
            spec = RemoteLearnSpec(name, tuple(videos), self.blocking or bpy.app.background)
            return tasks.start(self, context, request, spec, self.blocking, self.timeout, uploads=ups)
        cmd = actors.learn_command(python, videos, actor_dir, s.learn_mouth_bank)
        spec = LearnSpec(name, actor_dir, " ".join(cmd), time.monotonic(),
                         self.blocking or bpy.app.background, videos=len(videos))
        return tasks.start_process(self, context, cmd, spec, self.blocking, self.timeout)


classes = (FLOWVQ_OT_learn_actor,)
