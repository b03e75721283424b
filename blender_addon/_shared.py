"""The contract shared with the backend (one import place for the add-on).

protocol/messages: the wire; channels: the coefficient names; settings: GenerateSettings (every
generate setting with its range, default, label and help); takes: Take (curves + provenance);
livelink: Live Link Face CSV. All bpy-free.
"""
try:  # inside the built extension, shared/ is vendored as .flowvq_shared
    from .flowvq_shared import channels, livelink, messages, protocol, settings, takes
except ImportError:  # running from the source tree (tests, scripts): the installed package
    from flowvq_shared import channels, livelink, messages, protocol, settings, takes

__all__ = ["channels", "livelink", "messages", "protocol", "settings", "takes"]
