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
