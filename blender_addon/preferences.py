"""Add-on preferences: where the backend is, how to start one, timeouts."""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from .client import (CONNECT_TIMEOUT, DEFAULT_HOST, DEFAULT_PORT, GREETING_TIMEOUT,
                     IDLE_TIMEOUT)


class FlowVQPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    connection: EnumProperty(name="Connection", items=[
        ("AUTO", "Automatic", "Find a backend over zeroconf (_flowvq._tcp), else use host:port"),
        ("MANUAL", "Manual", "Always use the host, port and token below")], default="AUTO")
    host: StringProperty(name="Host", default=DEFAULT_HOST)
    port: IntProperty(name="Port", default=DEFAULT_PORT, min=1, max=65535)
    token: StringProperty(name="Token", subtype="PASSWORD",
                          description="Shared secret of a backend serving the LAN (flowvq serve "
                                      "--lan prints it)")
    lan_discovery: BoolProperty(name="Discover on the LAN", default=False,
                                description="Browse the whole network for backends, not only "
                                            "this machine (sends multicast packets)")
    backend_python: StringProperty(name="Backend Python", subtype="FILE_PATH",
                                   description="Python interpreter, or virtualenv folder, that "
                                               "has flowvq installed (for Start Local Backend)")
    actors_dir: StringProperty(name="Actors Folder", subtype="DIR_PATH",
                               description="Where Learn Actor writes actor profiles, and what "
                                           "Start Local Backend offers (--actors); empty: a "
                                           "folder in Blender's user data, made when needed")
    connect_timeout: FloatProperty(name="Connect Timeout (s)", default=CONNECT_TIMEOUT, min=0.5,
                                   max=60.0, description="Bound on opening the connection")
    greeting_timeout: FloatProperty(name="Greeting Timeout (s)", default=GREETING_TIMEOUT,
                                    min=1.0, description="How long a backend that accepted the "
                                    "connection may take to greet (it may be starting or busy)")
    idle_timeout: FloatProperty(name="Job Silence Timeout (s)", default=IDLE_TIMEOUT, min=5.0,
                                description="Give up on a job when the backend sends nothing "
                                            "for this long")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "connection", expand=True)
        col = layout.column()
        row = col.row(align=True)
        row.prop(self, "host")
        row.prop(self, "port")
        col.prop(self, "token")
        col.prop(self, "lan_discovery")
        layout.prop(self, "backend_python")
        layout.prop(self, "actors_dir")
        row = layout.row()
        row.prop(self, "connect_timeout")
        row.prop(self, "greeting_timeout")
        row.prop(self, "idle_timeout")


classes = (FlowVQPreferences,)
