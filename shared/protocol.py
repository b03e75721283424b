"""The FlowVQ wire protocol: length-prefixed msgpack frames carrying typed maps.

A frame is a 4-byte big-endian unsigned length followed by that many bytes of one msgpack map
whose key "type" names the message. numpy arrays travel as
{"__ndarray__": True, "dtype": "<f4", "shape": [..], "data": bytes}; object, void and complex
dtypes are refused and nothing is ever pickled. docs/protocol.md documents every message.

Used by both sides: the asyncio server (read_frame_async / write_frame_async) and the
add-on's blocking client thread (recv_frame / send_frame).
"""
from __future__ import annotations

import math
import re
import socket
import struct
from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME = 64 * 1024 * 1024  # bytes; a larger announced length is refused unread
HEADER = struct.Struct(">I")
MAX_ARRAY_ELEMENTS = 1 << 28  # 256 M elements: an absurd shape is refused before any allocation
MAX_DEPTH = 32

# Stable error codes (docs/protocol.md says when each is used).
BAD_FRAME = "bad_frame"
BAD_REQUEST = "bad_request"
BAD_AUDIO = "bad_audio"
BAD_IMAGE = "bad_image"
NO_FACE = "no_face"
TOO_LARGE = "too_large"
UNKNOWN_TYPE = "unknown_type"
UNSUPPORTED_VERSION = "unsupported_version"
UNAUTHORIZED = "unauthorized"
NOT_IMPLEMENTED = "not_implemented"
BUSY = "busy"
CANCELLED = "cancelled"
FORBIDDEN = "forbidden"
INTERNAL = "internal"
ERROR_CODES = (BAD_FRAME, BAD_REQUEST, BAD_AUDIO, BAD_IMAGE, NO_FACE, TOO_LARGE, UNKNOWN_TYPE,
               UNSUPPORTED_VERSION, UNAUTHORIZED, NOT_IMPLEMENTED, BUSY, CANCELLED, FORBIDDEN,
               INTERNAL)

# kind letters numpy uses: b bool, i int, u uint, f float. Object (O), void (V), complex (c),
# strings (U/S) and datetimes are refused: they can carry pickles or have no portable layout.
_ALLOWED_KINDS = frozenset("biuf")
_DTYPE_RE = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248])")


class ProtocolError(Exception):
    """A frame or message that breaks the protocol; `code` is one of ERROR_CODES.

    `fatal` means the byte stream can no longer be trusted (bad length, not msgpack): the
    connection must close. A well-framed message with bad content is not fatal.
    """

    def __init__(self, code: str, message: str, fatal: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fatal = fatal

    def __reduce__(self):  # picklable across processes (Ray workers, the recogniser's helper)
        return type(self), (self.code, self.message, self.fatal)


class ConnectionClosed(Exception):
    """The peer closed the connection (cleanly, between frames, or mid-frame)."""


# ---------------------------------------------------------------------------- array codec

def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise ProtocolError(BAD_REQUEST, f"array dtype {dtype.str} is not allowed "
                            "(bool, int, uint and float only)")


def encode_array(a: np.ndarray) -> dict:
    a = np.asarray(a)
    _check_dtype(a.dtype)
    if a.dtype.byteorder == ">":  # the wire is little-endian
        a = a.astype(a.dtype.newbyteorder("<"))
    a = np.ascontiguousarray(a)
    return {"__ndarray__": True, "dtype": a.dtype.str, "shape": list(a.shape),
            "data": a.tobytes()}


def decode_array(obj: dict) -> np.ndarray:
    dtype_s, shape, data = obj.get("dtype"), obj.get("shape"), obj.get("data")
    if not isinstance(dtype_s, str) or not isinstance(shape, (list, tuple)) \
            or not isinstance(data, (bytes, bytearray)):
        raise ProtocolError(BAD_REQUEST, "array needs dtype (str), shape (list) and data (bytes)")
    # a strict form before numpy parses it: numpy's own parser accepts far more (and raises more)
    if not _DTYPE_RE.fullmatch(dtype_s):
        raise ProtocolError(BAD_REQUEST, f"array dtype {dtype_s[:20]!r} is not allowed "
                            "(bool, int, uint and float only, e.g. '<f4')")
    dtype = np.dtype(dtype_s)
    _check_dtype(dtype)
    if len(shape) > 8 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                 for n in shape):
        raise ProtocolError(BAD_REQUEST, f"bad array shape {shape!r}")
    count = math.prod(shape)
    if count > MAX_ARRAY_ELEMENTS:
        raise ProtocolError(TOO_LARGE, f"array of shape {list(shape)} is too large")
    if count * dtype.itemsize != len(data):
        raise ProtocolError(BAD_REQUEST, f"array data is {len(data)} bytes but dtype {dtype.str} "
                            f"x shape {list(shape)} needs {count * dtype.itemsize}")
    # copy: the frame's bytes are read-only and must not stay referenced
    return np.frombuffer(bytes(data), dtype=dtype).reshape(shape).copy()


def _default(obj: Any):
    if isinstance(obj, np.ndarray):
        return encode_array(obj)
    if isinstance(obj, np.generic):
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"cannot send numpy scalar of dtype {obj.dtype}")
        return obj.item()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(f"cannot send object of type {type(obj).__name__}")


def _object_hook(obj: dict):
    if obj.get("__ndarray__") is True:
        return decode_array(obj)
    return obj


# ---------------------------------------------------------------------------- messages

def pack_message(msg: dict) -> bytes:
    """msgpack bytes of one message (no length prefix)."""
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError(BAD_REQUEST, "a message is a map with a string 'type'")
    return msgpack.packb(msg, default=_default, use_bin_type=True, strict_types=False)


def unpack_message(payload: bytes, max_size: int = DEFAULT_MAX_FRAME) -> dict:
    """Decode one frame's payload into a message map; ProtocolError on anything malformed."""
    try:
        obj = msgpack.unpackb(
            payload, raw=False, strict_map_key=True, object_hook=_object_hook,
            max_bin_len=max_size, max_str_len=max_size, max_array_len=1 << 20,
            max_map_len=1 << 16, max_ext_len=0)
    except ProtocolError:
        raise
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError,
            UnicodeDecodeError, OverflowError, RecursionError) as e:
        raise ProtocolError(BAD_FRAME, f"frame is not a valid msgpack message ({type(e).__name__})",
                            fatal=True) from None
    if not isinstance(obj, dict):
        raise ProtocolError(BAD_FRAME, f"a frame must hold a map, got {type(obj).__name__}",
                            fatal=True)
    if not isinstance(obj.get("type"), str):
        raise ProtocolError(BAD_REQUEST, "message has no string 'type'")
    return obj


def encode_frame(msg: dict, max_size: int = DEFAULT_MAX_FRAME) -> bytes:
    payload = pack_message(msg)
    if len(payload) > max_size:
        raise ProtocolError(TOO_LARGE, f"message of {len(payload)} bytes exceeds the frame limit "
                            f"of {max_size} bytes")
    return HEADER.pack(len(payload)) + payload


def check_length(n: int, max_size: int) -> None:
    if n > max_size:
        raise ProtocolError(TOO_LARGE, f"announced frame of {n} bytes exceeds the limit of "
                            f"{max_size} bytes", fatal=True)


# ---------------------------------------------------------------------------- blocking sockets

def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionClosed("connection closed by peer")
        buf += chunk
    return bytes(buf)


def send_frame(sock: socket.socket, msg: dict, max_size: int = DEFAULT_MAX_FRAME) -> None:
    sock.sendall(encode_frame(msg, max_size))


def recv_frame(sock: socket.socket, max_size: int = DEFAULT_MAX_FRAME) -> dict:
    """Read one message; socket timeouts propagate (callers set them)."""
    (n,) = HEADER.unpack(_recv_exact(sock, HEADER.size))
    check_length(n, max_size)
    return unpack_message(_recv_exact(sock, n), max_size)


# ---------------------------------------------------------------------------- asyncio streams

async def read_frame_async(reader, max_size: int = DEFAULT_MAX_FRAME) -> dict:
    import asyncio

    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError:
        raise ConnectionClosed("connection closed by peer") from None
    (n,) = HEADER.unpack(header)
    check_length(n, max_size)
    try:
        payload = await reader.readexactly(n)
    except asyncio.IncompleteReadError:
        raise ConnectionClosed("connection closed mid-frame") from None
    return unpack_message(payload, max_size)


async def write_frame_async(writer, msg: dict, max_size: int = DEFAULT_MAX_FRAME) -> None:
    writer.write(encode_frame(msg, max_size))
    await writer.drain()


# ---------------------------------------------------------------------------- constructors

def error(code: str, message: str, id: Any = None) -> dict:
    return {"type": "error", "id": id, "code": code, "message": message}


def progress(id: Any, fraction: float, stage: str) -> dict:
    return {"type": "progress", "id": id, "fraction": float(max(0.0, min(1.0, fraction))),
            "stage": stage}
