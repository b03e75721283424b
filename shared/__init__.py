"""What the Blender add-on and the backend agree on: protocol, channel names, emotions.

Imports only the standard library, msgpack and numpy; the add-on vendors this package.
"""
