"""Morphable face models: the project's own default head, ICT-FaceKit, Basel; export to npz/glb/obj."""
from .loaders import load_face_model
from .model import Camera, FaceModel


def export_face_model(model, path, fmt=None):
    """Write `model` as "npz", "glb" or "obj" (format from the suffix when fmt is None)."""
    from .export import export_face_model as _export

    return _export(model, path, fmt)


__all__ = ["Camera", "FaceModel", "export_face_model", "load_face_model"]
