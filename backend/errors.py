"""One error type for everything a user can get wrong: a stable code plus one readable line.

The CLI prints `error: <message>` and exits 2; the server answers
`{"type": "error", "code": ..., "message": ...}` and keeps serving.
"""
from __future__ import annotations

from flowvq_shared.protocol import ProtocolError


class FlowVQError(ProtocolError):
    """A user-facing failure with a stable protocol error code. A ProtocolError, so one `except
    ProtocolError` catches it and what the shared contract refuses (settings, take files)."""

    code = "bad_request"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(code or type(self).code, message)

    def __reduce__(self):  # picklable (a Ray worker's error reaches the driver as itself)
        return type(self), (self.message, self.code)


class BadRequest(FlowVQError):
    code = "bad_request"


class BadAudio(FlowVQError):
    code = "bad_audio"


class BadImage(FlowVQError):
    code = "bad_image"


class NoFace(FlowVQError):
    code = "no_face"


class TooLarge(FlowVQError):
    code = "too_large"


class NotImplementedYet(FlowVQError):
    """A model this request needs is not built or not trained yet."""

    code = "not_implemented"


class Cancelled(FlowVQError):
    code = "cancelled"


class CheckpointError(FlowVQError):
    code = "bad_checkpoint"


def readable_file(path, what: str, error: type[FlowVQError] = FlowVQError):
    """The path if it names a regular file this process can open; `error` says why not.

    One check for every CLI entry point that reads a user's file: missing, a folder, a FIFO or
    device (reading would block or never end), or no permission.
    """
    import os
    from pathlib import Path

    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except PermissionError:
        raise error(f"cannot read {path}: permission denied") from None
    except OSError as e:
        raise error(f"cannot read {path}: {e.strerror or e}") from None
    import stat as _stat

    a = "an" if what[:1] in "aeiou" else "a"
    if _stat.S_ISDIR(st.st_mode):
        raise error(f"{path} is a folder, not {a} {what}")
    if not _stat.S_ISREG(st.st_mode):
        raise error(f"{path} is not a regular file (a pipe or a device cannot be read as {a} {what})")
    if not os.access(path, os.R_OK):
        raise error(f"cannot read {path}: permission denied")
    return path
