"""Every operator class, gathered for registration, and the add-on's startup/shutdown.

The operators live in small modules (ops_backend, ops_generate, ops_emotion, ops_takes,
ops_target, ops_plates, ops_export, ops_actors, ops_dub); background work goes through `tasks`,
the one place that runs jobs and reports their outcome.
"""
from __future__ import annotations

import bpy

from . import connection, ops_actors, ops_backend, ops_dub, ops_emotion, ops_export, ops_generate, \
    ops_plates, ops_takes, ops_target, tasks

classes = (*ops_backend.classes, *ops_generate.classes, *ops_emotion.classes, *ops_plates.classes,
           *ops_takes.classes, *ops_target.classes, *ops_export.classes,
           *ops_actors.classes, *ops_dub.classes)

AUTO_CHECK_SECONDS = 15.0


def _auto_check() -> float | None:
    """Keeps the panel's backend status fresh in the UI (never in background mode)."""
    if bpy.app.background:
        return None
    if not tasks.checks_running() and not connection.status().busy:
        try:
            bpy.ops.flowvq.check_backend()
        except RuntimeError:  # no valid context at this moment: try at the next tick
            pass
    return AUTO_CHECK_SECONDS


def startup() -> None:
    ops_dub.add_menu()
    if not bpy.app.background and not bpy.app.timers.is_registered(_auto_check):
        bpy.app.timers.register(_auto_check, first_interval=1.0, persistent=True)


def shutdown() -> None:
    """On unregister: cancel jobs, stop the timers and the backend this session started."""
    tasks.shutdown()
    ops_dub.remove_menu()
    if bpy.app.timers.is_registered(_auto_check):
        bpy.app.timers.unregister(_auto_check)
    connection.LOCAL.stop()
