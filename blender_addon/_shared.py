"""The protocol and channel names shared with the backend (one import place for the add-on)."""
try:  # inside the built extension, shared/ is vendored as .flowvq_shared
    from .flowvq_shared import channels, messages, protocol
except ImportError:  # running from the source tree (tests, scripts): the installed package
    from flowvq_shared import channels, messages, protocol

__all__ = ["channels", "messages", "protocol"]
