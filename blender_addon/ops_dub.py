"""Dub Movie Strip: the Video Sequencer's movie strip with its mouth moved to a new line (a sound
strip's file, or the target's active take), done by the backend (`dub`), loaded back as an image
strip above the movie strip. Names, folders and the request live in the bpy-free `dubs`."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import bpy

from . import client, dubs, plates, takes, tasks
from ._shared import protocol
from .connection import UserError
from .ops_generate import keyed_settings, scene_fps, settings_of, target_of


def _one(strips, kind: str, active):
    """The active strip of `kind`, else the only selected one, else the only one; None if unclear."""
    if active is not None and active.type == kind:
        return active
    of_kind = [s for s in strips if s.type == kind]
    selected = [s for s in of_kind if s.select]
    if len(selected) == 1:
        return selected[0]
    return of_kind[0] if len(of_kind) == 1 else None


def movie_of(scene):
    se = scene.sequence_editor
    strip = _one(se.strips_all, "MOVIE", se.active_strip) if se is not None else None
    if strip is None:
        raise UserError("no movie strip to dub: select the shot's movie strip in the Video Sequencer"
                        if se is None or not any(s.type == "MOVIE" for s in se.strips_all) else
                        "several movie strips: select the one to dub")
    path = bpy.path.abspath(strip.filepath)
    if not os.path.isfile(path):
        raise UserError(f"movie strip '{strip.name}' points to a missing file {path}")
    return strip, path


def sound_line(scene, movie) -> tuple[client.Upload, str]:
    """The selected sound strip's whole file as the line's upload, and what the report says."""
    se = scene.sequence_editor
    strip = _one(se.strips_all, "SOUND", se.active_strip)
    if strip is None:
        raise UserError("no sound strip for the new line: select one in the Video Sequencer (or set "
                        "New Line to Active Take)")
    sound = strip.sound
    name = dubs.upload_name(bpy.path.abspath(sound.filepath), "line.wav")
    if sound.packed_file is not None:
        up = client.Upload(dubs.LINE_UPLOAD, name, data=bytes(sound.packed_file.data))
    else:
        path = bpy.path.abspath(sound.filepath)
        if not os.path.isfile(path):
            raise UserError(f"sound strip '{strip.name}' points to a missing file {path}")
        up = client.Upload(dubs.LINE_UPLOAD, name, path=path)
    moved = (int(round(strip.frame_start)) != int(round(movie.frame_start))
             or strip.frame_offset_start or strip.frame_offset_end)
    note = (f"the line is the whole file of sound strip '{strip.name}', from the movie strip's first frame"
            + (" (the sound strip's place and trim on the timeline are not used)" if moved else ""))
    return up, note


def take_line(context):
    obj = target_of(context)
    if obj is None or not (0 <= obj.flowvq.active_take < len(obj.flowvq.takes)):
        raise UserError("no active take for the new line: generate or import a take (or set New Line "
                        "to Sound Strip)")
    item = obj.flowvq.takes[obj.flowvq.active_take]
    return takes.take_of(item), f"the line is take '{item.name}', from the movie strip's first frame"


@dataclass(frozen=True)
class Placement:
    """Where the dub goes if its movie strip is gone by the time the frames are in."""
    frame_start: int
    channel: int
    offset_start: int
    offset_end: int


@dataclass(frozen=True)
class DubSpec:
    """Everything needed to load a finished dub, by name (no bpy objects kept)."""
    scene: str
    movie: str
    movie_file: str
    folder: str
    name: str
    placement: Placement
    notes: tuple = ()
    files: list = field(default_factory=list)  # filled from frame events (main thread)

    def on_frame(self, payload) -> None:
        self.files.append(payload)

    def discard(self) -> None:
        """A failed or cancelled dub leaves nothing behind: its own new folder goes."""
        dubs.discard(self.folder)

    def apply(self, result: dict) -> str:
        frames = int(result.get("frames", 0))
        if len(self.files) != frames or frames == 0:
            raise UserError(f"the backend sent {len(self.files)} of the shot's {frames} frames")
        scene = bpy.data.scenes[self.scene]
        se = scene.sequence_editor_create()
        movie = se.strips_all.get(self.movie)
        if movie is None or movie.type != "MOVIE":  # deleted while dubbing: where it was
            p = self.placement
            movie = _Stand(p.frame_start, p.channel, p.offset_start, p.offset_end)
        name = dubs.unique_name(self.name, [s.name for s in se.strips_all])
        dubs.write_sidecar(self.folder, {
            "kind": "flowvq-dub-strip", "movie_strip": self.movie, "movie_file": self.movie_file,
            "strip": name, "notes": list(self.notes), "result": {k: v for k, v in result.items()
                                                                 if k not in ("type", "id")}})
        strip = dubs.add_dub_strip(scene, movie, self.files, name)
        notes = [*self.notes, *(result.get("notes") or ())]
        return (f"dubbed '{self.movie}': {frames} frames ({result.get('width')}x{result.get('height')}, "
                f"{result.get('dubbed_frames')} with the new mouth, its inside from "
                f"{(result.get('bank') or {}).get('from', '?')}) in {self.folder}; image strip "
                f"'{strip.name}' on channel {strip.channel} from frame {int(strip.frame_start)}"
                + (f". Note: {'; '.join(notes)}." if notes else ""))


@dataclass(frozen=True)
class _Stand:
    frame_start: int
    channel: int
    frame_offset_start: int
    frame_offset_end: int


class FLOWVQ_OT_dub_movie_strip(tasks.JobOperator, bpy.types.Operator):
    """Dub the movie strip: its mouth follows a new line (the selected sound strip, or the active
    take) while the rest stays as filmed; the dubbed frames come back as an image strip above it"""
    bl_idname = "flowvq.dub_movie_strip"
    bl_label = "Dub Movie Strip"

    def execute(self, context):
        scene = context.scene
        s = scene.flowvq
        try:
            movie, shot = movie_of(scene)
            settings = settings_of(scene)
            notes = []
            if s.dub_line == "TAKE":
                take, note = take_line(context)
                line = ()
            else:
                if s.emotion_source == "IMAGE":
                    raise UserError("Dub takes the line's emotion from a label or from emotion keys, not "
                                    "from a reference image: set Emotion From to Label or Keys")
                take = None
                up, note = sound_line(scene, movie)
                line = (up,)
                if s.emotion_source == "KEYS":
                    settings, knote = keyed_settings(scene, settings, int(round(movie.frame_start)))
                    notes += [knote] if knote else []
            notes.insert(0, note)
            rate = dubs.rate_note(float(getattr(movie, "fps", 0.0)) or scene_fps(scene), scene_fps(scene),
                                  int(movie.frame_duration))
            notes += [rate] if rate else []
            request = dubs.request(settings, s.dub_format, take)
            root = dubs.dubs_root(bpy.data.filepath, bpy.path.abspath(s.dub_dir) if s.dub_dir else "")
            folder, number = dubs.new_folder(root, dubs.safe_stem(movie.name))
        except (UserError, takes.TakeError) as e:
            return tasks.fail(self, str(e))
        except protocol.ProtocolError as e:
            return tasks.fail(self, e.message)
        except OSError as e:
            return tasks.fail(self, f"cannot make the dub's folder: {e}")
        name = dubs.unique_name(f"{movie.name} dub {number:03d}",
                                [st.name for st in scene.sequence_editor.strips_all])
        spec = DubSpec(scene.name, movie.name, shot, str(folder), name,
                       Placement(int(round(movie.frame_start)), movie.channel, movie.frame_offset_start,
                                 movie.frame_offset_end), tuple(notes))
        uploads = (client.Upload(dubs.SHOT_UPLOAD, dubs.upload_name(shot, "shot.mp4"), path=shot), *line)
        return tasks.start(self, context, request, spec, self.blocking, self.timeout,
                           on_frame=plates.FrameWriter(str(folder), prefix="frame_", first=1),
                           uploads=uploads)


def _menu(self, context):
    self.layout.separator()
    self.layout.operator(FLOWVQ_OT_dub_movie_strip.bl_idname, icon="SEQUENCE")


def add_menu() -> None:
    bpy.types.SEQUENCER_MT_strip.append(_menu)


def remove_menu() -> None:
    bpy.types.SEQUENCER_MT_strip.remove(_menu)


classes = (FLOWVQ_OT_dub_movie_strip,)
