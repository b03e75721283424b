"""PoseFlow: the same flow structure on the 6-D head pose, context = audio + previous poses,
a single standard Gaussian prior (one actnorm class)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .layers import Condition, Flow, FlowStep, gaussian_log_prob

if TYPE_CHECKING:  # the annotations name numpy's Generator; the module does not need numpy
    import numpy as np


class PoseFlow(nn.Module):
    def __init__(self, dim: int, frame_dim: int, tau: int, steps: int, hidden: int, heads: int, layers: int,
                 ffn: int, window: int):
        super().__init__()
        self.dim = dim
        self.flow = Flow([FlowStep(dim, 1, frame_dim, tau, hidden, heads, layers, ffn, window, seed=2000 + k)
                          for k in range(steps)])

    def log_prob(self, x: torch.Tensor, cond: Condition) -> tuple[torch.Tensor, torch.Tensor]:
        z, logdet = self.flow(x, cond)
        return gaussian_log_prob(z) + logdet, z

    def sample_latent(self, n: int, rng: "np.random.Generator", temperature: float) -> torch.Tensor:
        return temperature * torch.from_numpy(rng.standard_normal((n, self.dim))).float()

    def inverse(self, z: torch.Tensor, cond: Condition) -> torch.Tensor:
        return self.flow.inverse(z, cond)[0]
