"""One error type for everything a user can get wrong: a stable code plus one readable line.

The CLI prints `error: <message>` and exits 2; the server answers
`{"type": "error", "code": ..., "message": ...}` and keeps serving.
"""
from __future__ import annotations


class FlowVQError(Exception):
    """A user-facing failure with a stable protocol error code."""

    code = "bad_request"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


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
