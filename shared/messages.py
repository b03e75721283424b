"""Typed requests of the wire protocol: frozen dataclasses parsed and validated from maps.

`parse_request(msg)` turns a decoded frame into one of the request classes below, or raises
ProtocolError(bad_request / unknown_type) naming the field that is wrong. Replies are plain
maps built by the server (see docs/protocol.md); requests are typed because they are what an
untrusted peer controls.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from .channels import N_EXPRESSION, N_POSE
from .protocol import BAD_REQUEST, UNKNOWN_TYPE, ProtocolError
from .settings import FPS_RANGE, GenerateSettings

MAX_RENDER_FRAMES = 25 * 60 * 10  # 10 minutes at 25 fps
IMAGE_FORMATS = ("png", "png16", "exr")


def _bad(msg: str) -> ProtocolError:
    return ProtocolError(BAD_REQUEST, msg)


def _get(m: dict, name: str, kinds: tuple, default: Any = ..., what: str = "") -> Any:
    if name not in m or m[name] is None:
        if default is ...:
            raise _bad(f"field '{name}' is required")
        return default
    v = m[name]
    if isinstance(v, bool) and bool not in kinds:
        raise _bad(f"field '{name}' must be {what or kinds[0].__name__}, got bool")
    if not isinstance(v, kinds):
        raise _bad(f"field '{name}' must be {what or kinds[0].__name__}, got {type(v).__name__}")
    return v


def _number(m: dict, name: str, default: Any = ..., lo: float = -math.inf,
            hi: float = math.inf) -> float:
    v = _get(m, name, (int, float), default, "a number")
    v = float(v)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise _bad(f"field '{name}' must be between {lo:g} and {hi:g}, got {v}")
    return v


def _int(m: dict, name: str, default: Any = ..., lo: int = -(2**63), hi: int = 2**63 - 1) -> int:
    v = _get(m, name, (int,), default, "an integer")
    if not lo <= v <= hi:
        raise _bad(f"field '{name}' must be between {lo} and {hi}, got {v}")
    return int(v)


def _array(m: dict, name: str, ndim: int, width: int | None = None, default: Any = ...,
           max_len: int | None = None) -> np.ndarray | None:
    v = _get(m, name, (np.ndarray,), default, "an array")
    if v is None:
        return None
    if v.ndim != ndim or (width is not None and v.shape[-1] != width):
        want = f"(T, {width})" if ndim == 2 else f"({width},)"
        raise _bad(f"field '{name}' must have shape {want}, got {list(v.shape)}")
    if v.dtype.kind not in "fiu":
        raise _bad(f"field '{name}' must be numeric, got {v.dtype.str}")
    if max_len is not None and v.shape[0] > max_len:
        raise ProtocolError("too_large", f"field '{name}' has {v.shape[0]} frames; "
                            f"the limit is {max_len}")
    v = v.astype(np.float32)
    if not np.isfinite(v).all():
        raise _bad(f"field '{name}' contains NaN or inf")
    return v


@dataclass(frozen=True)
class Request:
    type: ClassVar[str] = ""
    id: Any

    def to_wire(self) -> dict:
        return {"type": self.type, **{k: v for k, v in asdict(self).items() if v is not None}}


@dataclass(frozen=True)
class Hello(Request):
    """Client's answer to the server's greeting: its protocol version and, on the LAN, a token."""
    type: ClassVar[str] = "hello"
    protocol: int
    client: str = ""
    token: str | None = None

    @classmethod
    def from_wire(cls, m: dict) -> "Hello":
        return cls(id=m.get("id"), protocol=_int(m, "protocol", lo=0),
                   client=_get(m, "client", (str,), ""), token=_get(m, "token", (str,), None))


@dataclass(frozen=True)
class Generate(Request):
    """Audio + settings -> takes. Audio is a file's bytes (wav, flac, ogg, mp3) or float samples.

    On the wire the settings' fields sit beside the audio in the same map (docs/protocol.md)."""
    type: ClassVar[str] = "generate"
    audio: bytes | None = None
    samples: np.ndarray | None = None
    sample_rate: int | None = None
    settings: GenerateSettings = field(default_factory=GenerateSettings)
    reference_image: bytes | None = None

    def to_wire(self) -> dict:
        out = {"type": self.type, "id": self.id, **self.settings.to_wire()}
        for k in ("audio", "samples", "sample_rate", "reference_image"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out

    @classmethod
    def from_wire(cls, m: dict) -> "Generate":
        audio = _get(m, "audio", (bytes,), None, "bytes (an audio file)")
        samples = _get(m, "samples", (np.ndarray,), None, "an array")
        sr = None
        if (audio is None) == (samples is None):
            raise _bad("give exactly one of 'audio' (file bytes) or 'samples' (+ 'sample_rate')")
        if samples is not None:
            if samples.ndim not in (1, 2) or samples.dtype.kind not in "fi":
                raise _bad("field 'samples' must be a 1-D (or 2-D channels-last) numeric array")
            sr = _int(m, "sample_rate", lo=4000, hi=192000)
        return cls(
            id=m.get("id"), audio=audio, samples=samples, sample_rate=sr,
            settings=GenerateSettings.from_wire(m),
            reference_image=_get(m, "reference_image", (bytes,), None, "bytes (an image file)"))


@dataclass(frozen=True)
class Track(Request):
    """An image file's bytes -> expression, pose, identity, camera, landmarks."""
    type: ClassVar[str] = "track"
    image: bytes = b""
    model: str = "default"

    @classmethod
    def from_wire(cls, m: dict) -> "Track":
        return cls(id=m.get("id"), image=_get(m, "image", (bytes,), what="bytes (an image file)"),
                   model=_get(m, "model", (str,), "default"))


@dataclass(frozen=True)
class Render(Request):
    """Portrait + curves -> plate frames, streamed back one `frame` message each."""
    type: ClassVar[str] = "render"
    portrait: bytes = b""
    expression: np.ndarray | None = None
    pose: np.ndarray | None = None
    fps: float = 25.0
    format: str = "png"
    refine: bool = False
    max_side: int = 0  # 0 = the portrait's own resolution; else frames are downscaled to fit

    @classmethod
    def from_wire(cls, m: dict) -> "Render":
        exp = _array(m, "expression", 2, N_EXPRESSION, max_len=MAX_RENDER_FRAMES)
        pose = _array(m, "pose", 2, N_POSE, max_len=MAX_RENDER_FRAMES)
        if exp.shape[0] != pose.shape[0] or exp.shape[0] == 0:
            raise _bad(f"expression ({exp.shape[0]} frames) and pose ({pose.shape[0]} frames) "
                       "must have the same, non-zero length")
        fmt = _get(m, "format", (str,), "png")
        if fmt not in IMAGE_FORMATS:
            raise _bad(f"field 'format' must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
        return cls(id=m.get("id"), portrait=_get(m, "portrait", (bytes,), what="bytes"),
                   expression=exp, pose=pose, fps=_number(m, "fps", 25.0, *FPS_RANGE),
                   format=fmt, refine=_get(m, "refine", (bool,), False),
                   max_side=_int(m, "max_side", 0, 0, 16384))


@dataclass(frozen=True)
class FaceModel(Request):
    """The default head (or another loaded model) as arrays, for the add-on to build a mesh."""
    type: ClassVar[str] = "face_model"
    model: str = "default"

    @classmethod
    def from_wire(cls, m: dict) -> "FaceModel":
        name = _get(m, "model", (str,), "default")
        if name not in ("default", "ict"):
            raise _bad(f"field 'model' must be 'default' or 'ict', got {name!r}")
        return cls(id=m.get("id"), model=name)


MAX_UPLOAD = 4 * 1024**3  # bytes one upload may total (a long shot); named in the refusal
MAX_UPLOAD_NAME = 200


@dataclass(frozen=True)
class Upload(Request):
    """One chunk of a file the client sends in pieces (a shot, an actor's footage): `id` names the
    upload; chunks come in order (`offset` = bytes received so far); `total` is the whole size. The
    upload lives as long as its connection; requests name it by id (`learn_actor`'s `uploads`)."""
    type: ClassVar[str] = "upload"
    offset: int = 0
    total: int = 0
    data: bytes = b""
    name: str = ""

    @classmethod
    def from_wire(cls, m: dict) -> "Upload":
        if m.get("id") is None:
            raise _bad("field 'id' is required: it names the upload")
        total = _int(m, "total", lo=1, hi=2**62)
        if total > MAX_UPLOAD:
            raise ProtocolError("too_large", f"an upload of {total} bytes; the limit is {MAX_UPLOAD} bytes "
                                f"({MAX_UPLOAD // 1024**3} GiB)")
        offset = _int(m, "offset", lo=0, hi=total)
        data = _get(m, "data", (bytes,), what="bytes")
        if offset + len(data) > total:
            raise _bad(f"chunk at {offset} of {len(data)} bytes runs past the upload's total {total}")
        name = _get(m, "name", (str,), "")
        if len(name) > MAX_UPLOAD_NAME or "/" in name or "\\" in name or name in (".", ".."):
            raise _bad("field 'name' must be a plain file name (no folders), up to 200 characters")
        return cls(id=m["id"], offset=offset, total=total, data=data, name=name)


@dataclass(frozen=True)
class LearnActor(Request):
    """Uploaded footage of one person -> an actor profile in the server's --actors folder, named `name`
    (flowvq actor learn). Streams progress; cancel stops it between steps (a re-send resumes)."""
    type: ClassVar[str] = "learn_actor"
    uploads: tuple = ()
    name: str = ""
    steps: int = 200
    max_seconds: float | None = None
    mouth_bank: bool = True  # False: a profile of a few MB to share (flowvq actor learn --no-mouth-bank)

    @classmethod
    def from_wire(cls, m: dict) -> "LearnActor":
        from .settings import ACTOR_ID

        ups = _get(m, "uploads", (list, tuple), what="a list of upload ids")
        if not 1 <= len(ups) <= 8 or not all(isinstance(u, (int, str)) and not isinstance(u, bool) for u in ups):
            raise _bad("field 'uploads' must list 1 to 8 upload ids")
        name = _get(m, "name", (str,))
        if not ACTOR_ID.fullmatch(name):
            raise _bad(f"field 'name' must be an actor id (letters, digits, '.', '_', '-', up to 64), got {name!r}")
        ms = m.get("max_seconds")
        return cls(id=m.get("id"), uploads=tuple(ups), name=name, steps=_int(m, "steps", 200, 1, 5000),
                   max_seconds=None if ms is None else _number(m, "max_seconds", lo=1.0, hi=36000.0),
                   mouth_bank=_get(m, "mouth_bank", (bool,), True, "true or false"))


def _upload_id(m: dict, name: str, default: Any = ...) -> Any:
    v = _get(m, name, (int, str), default, "an upload id (an integer or a string)")
    if isinstance(v, str) and not 0 < len(v) <= 128:
        raise _bad(f"field '{name}' must be an upload id of 1 to 128 characters")
    return v


def _line_take(v: Any) -> tuple[np.ndarray, float]:
    """A dub's line as curves: a whole take (Take.to_wire) or just `expression` (T, 64) + `fps`."""
    from .channels import EXPRESSION_NAMES
    from .takes import Take

    if not isinstance(v, dict):
        raise _bad(f"field 'take' must be a map (a take, or expression + fps), got {type(v).__name__}")
    if "settings" in v:  # a whole take (Take.to_wire): the contract's own checks
        if not isinstance(v["settings"], dict):
            raise _bad("field 'take': 'settings' must be a map")
        take = Take.from_wire(v)
        if take.names != EXPRESSION_NAMES:
            raise _bad("field 'take' must carry the 64 FlowVQ channels in their order (its 'names')")
        exp, fps = take.expression, float(take.fps)
    else:
        exp = _array(v, "expression", 2, N_EXPRESSION, max_len=MAX_RENDER_FRAMES)
        fps = _number(v, "fps", lo=FPS_RANGE[0], hi=FPS_RANGE[1])
    if exp.shape[0] == 0:
        raise _bad("field 'take' has no frames")
    if exp.shape[0] > MAX_RENDER_FRAMES:
        raise ProtocolError("too_large", f"field 'take' has {exp.shape[0]} frames; the limit is "
                            f"{MAX_RENDER_FRAMES}")
    return exp, fps


@dataclass(frozen=True)
class Dub(Request):
    """A filmed shot (an upload) + a new line -> every frame of the shot with its mouth moved to the
    line, streamed back one `frame` message each (as `render` does). The line is audio (a file's bytes,
    or an upload) or curves (`take`: a Take's wire map, or expression + fps). The settings sit beside
    them in the map as in `generate`: they shape a line generated from audio, and `actor` (an id the
    server offers) gives that actor's model and the mouth's inside (their frames)."""
    type: ClassVar[str] = "dub"
    shot: Any = None  # the upload id of the shot
    audio: bytes | None = None
    audio_upload: Any = None  # or the upload id of the line's audio
    expression: np.ndarray | None = None  # or the line as curves (T, 64) ...
    line_fps: float | None = None  # ... at this frame rate
    settings: GenerateSettings = field(default_factory=GenerateSettings)
    format: str = "png"

    def to_wire(self) -> dict:
        out = {"type": self.type, "id": self.id, **self.settings.to_wire(), "shot": self.shot,
               "format": self.format}
        if self.audio is not None:
            out["audio"] = self.audio
        if self.audio_upload is not None:
            out["audio_upload"] = self.audio_upload
        if self.expression is not None:
            out["take"] = {"expression": self.expression, "fps": self.line_fps}
        return out

    @classmethod
    def from_wire(cls, m: dict) -> "Dub":
        shot = _upload_id(m, "shot")
        audio = _get(m, "audio", (bytes,), None, "bytes (an audio file)")
        audio_upload = _upload_id(m, "audio_upload", None)
        take = m.get("take")
        if sum(x is not None for x in (audio, audio_upload, take)) != 1:
            raise _bad("give the new line as exactly one of 'audio' (file bytes), 'audio_upload' "
                       "(an upload id) or 'take' (a take, or expression + fps)")
        exp, fps = _line_take(take) if take is not None else (None, None)
        fmt = _get(m, "format", (str,), "png")
        if fmt not in IMAGE_FORMATS:
            raise _bad(f"field 'format' must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
        return cls(id=m.get("id"), shot=shot, audio=audio, audio_upload=audio_upload, expression=exp,
                   line_fps=fps, settings=GenerateSettings.from_wire(m), format=fmt)


@dataclass(frozen=True)
class Cancel(Request):
    type: ClassVar[str] = "cancel"
    target: Any = None  # the id of the job to cancel (defaults to `id`)

    @classmethod
    def from_wire(cls, m: dict) -> "Cancel":
        if m.get("id") is None:
            raise _bad("field 'id' is required: the id of the request to cancel")
        return cls(id=m["id"], target=m["id"])


@dataclass(frozen=True)
class Shutdown(Request):
    type: ClassVar[str] = "shutdown"

    @classmethod
    def from_wire(cls, m: dict) -> "Shutdown":
        return cls(id=m.get("id"))


@dataclass(frozen=True)
class Ping(Request):
    type: ClassVar[str] = "ping"

    @classmethod
    def from_wire(cls, m: dict) -> "Ping":
        return cls(id=m.get("id"))


REQUESTS: dict[str, type[Request]] = {
    c.type: c for c in (Hello, Generate, Track, Render, FaceModel, Upload, LearnActor, Dub, Cancel, Shutdown,
                         Ping)}


def parse_request(msg: dict) -> Request:
    kind = msg.get("type")
    cls = REQUESTS.get(kind)
    if cls is None:
        raise ProtocolError(UNKNOWN_TYPE, f"unknown message type {kind!r}; known: "
                            f"{', '.join(sorted(REQUESTS))}")
    rid = msg.get("id")
    if rid is not None and not isinstance(rid, (int, str)) or isinstance(rid, bool):
        raise _bad("field 'id' must be an integer or a string")
    if isinstance(rid, str) and len(rid) > 128:
        raise _bad("field 'id' is longer than 128 characters")
    return cls.from_wire(msg)


def field_names(cls: type[Request]) -> list[str]:
    return [f.name for f in fields(cls)]
