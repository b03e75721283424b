"""Face tracking: image/video -> 64 expression channels, 6-D pose and one identity per clip."""
from .fit import FitConfig, LandmarkFitter
from .result import TrackResult
from .track import track

__all__ = ["FitConfig", "LandmarkFitter", "TrackResult", "track"]
