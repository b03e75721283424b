"""Plates: a portrait + a take's curves -> HD face frames (geometry warp, optional VQIG refinement)."""
from .fit import PortraitFit, fit_portrait
from .plates import PlateRenderer, portrait_sha256, write_plates
from .warp import FaceWarper, WarpSettings

__all__ = ["PlateRenderer", "write_plates", "PortraitFit", "fit_portrait", "FaceWarper", "WarpSettings",
           "portrait_sha256"]
