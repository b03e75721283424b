"""dlib's models, loaded in one place: the frontal face detector, the 68-landmark shape predictor
and the 128-d face-recognition model (weights ship in face-recognition-models; nothing downloads).

`DlibModels` loads each model on first use and keeps it; `dlib_models()` is the process's shared
instance (loading the predictor takes ~1 s, so every caller shares one). The tracker, the
evaluation's landmark cache and the plate measurements all use it."""
from __future__ import annotations

import functools


class DlibModels:
    """Lazily loaded dlib models; each attribute loads its model once."""

    @functools.cached_property
    def detector(self):
        import dlib

        return dlib.get_frontal_face_detector()

    @functools.cached_property
    def predictor(self):
        import dlib
        import face_recognition_models

        return dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

    @functools.cached_property
    def recogniser(self):
        import dlib
        import face_recognition_models

        return dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())


@functools.lru_cache(maxsize=1)
def dlib_models() -> DlibModels:
    """The shared DlibModels of this process."""
    return DlibModels()
