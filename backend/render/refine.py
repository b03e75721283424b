"""VQIG refinement of geometry-warped plates: crop the face square, refine, blend back."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from flowvq_shared.channels import N_EXPRESSION, N_POSE


class Refiner:
    def __init__(self, checkpoint, portrait: np.ndarray, landmarks: np.ndarray, device=None, w: float = 0.5):
        import torch

        from ..vqig import load_generator
        from ..vqig.crop import crop_face, face_box

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.gen = load_generator(checkpoint).to(self.device).eval()
        self.checkpoint = str(Path(checkpoint))
        self.size = self.gen.cfg.codebook.image_size
        self.window = self.gen.cfg.motion_window
        self.w = float(w)
        self.box = face_box(landmarks)  # one crop for every frame: no jitter from re-detection
        self.source = crop_face(portrait, self.box, self.size)

    def coeff_window(self, expression: np.ndarray, pose: np.ndarray, i: int) -> np.ndarray:
        idx = np.clip(i + np.arange(self.window) - self.window // 2, 0, len(expression) - 1)
        return np.concatenate([expression[idx], pose[idx]], 1).reshape(1, self.window, N_EXPRESSION + N_POSE)

    def __call__(self, frame: np.ndarray, expression: np.ndarray, pose: np.ndarray, i: int) -> np.ndarray:
        from ..vqig import refine
        from ..vqig.crop import crop_face, paste_face

        crop = crop_face(frame, self.box, self.size)
        out = refine(self.gen, self.source, crop[None], self.coeff_window(expression, pose, i), w=self.w,
                     device=self.device)[0]
        return paste_face(frame, out, self.box)
