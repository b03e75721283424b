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
                   max_seconds=None if ms is None else _number(m, "max_seconds", lo=1.0, hi=36000.0))


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
    c.type: c for c in (Hello, Generate, Track, Render, FaceModel, Upload, LearnActor, Cancel, Shutdown, Ping)}


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
