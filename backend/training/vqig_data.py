"""Training data of VQIG: face crops of clips with their curves and geometry-warped inputs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadRequest


@dataclass(frozen=True)
class PlateData:
    """frames[i]: real crop of frame i; warped[i]: the clip's source crop warped by the geometry
    renderer to frame i's curves; coeffs[i]: [expression 64, pose 6]; clip[i]: which clip;
    sources[c]: clip c's source crop (its first frame, the portrait of a plate)."""

    frames: np.ndarray  # (N,S,S,3) uint8
    warped: np.ndarray  # (N,S,S,3) uint8
    coeffs: np.ndarray  # (N,70) float32
    clip: np.ndarray  # (N,) int64
    sources: np.ndarray  # (C,S,S,3) uint8

    def __post_init__(self):
        n = len(self.frames)
        if not (len(self.warped) == len(self.coeffs) == len(self.clip) == n) or n == 0:
            raise BadRequest("PlateData arrays must be non-empty and of equal length")
        if np.any(np.diff(self.clip) < 0):
            raise BadRequest("PlateData frames must be grouped by clip")

    def __len__(self) -> int:
        return len(self.frames)

    def clip_range(self, i: int) -> tuple[int, int]:
        c = self.clip[i]
        return int(np.searchsorted(self.clip, c, "left")), int(np.searchsorted(self.clip, c, "right"))

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, frames=self.frames, warped=self.warped, coeffs=self.coeffs, clip=self.clip,
                 sources=self.sources)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "PlateData":
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(**{k: z[k] for k in ("frames", "warped", "coeffs", "clip", "sources")})
        except (OSError, KeyError, ValueError) as e:
            raise BadRequest(f"not a VQIG dataset: {path} ({e})") from None

    @staticmethod
    def concat(parts: list["PlateData"]) -> "PlateData":
        offs = np.cumsum([0] + [len(p.sources) for p in parts[:-1]])
        return PlateData(np.concatenate([p.frames for p in parts]), np.concatenate([p.warped for p in parts]),
                         np.concatenate([p.coeffs for p in parts]),
                         np.concatenate([p.clip + o for p, o in zip(parts, offs)]),
                         np.concatenate([p.sources for p in parts]))
