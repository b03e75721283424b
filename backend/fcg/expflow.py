"""ExpFlow: a conditional flow on the 64 expression channels with a Student-t mixture prior.

Data -> latent through K steps (multi-actnorm per emotion, LU 1x1, transformer coupling); the prior
has one Student-t component per emotion class (nu = 50, identity scale) whose means are drawn once
from N(0, I) by a fixed generator and kept as a buffer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .layers import Condition, Flow, FlowStep, student_t_log_prob

if TYPE_CHECKING:  # the annotations name numpy's Generator; the module does not need numpy
    import numpy as np


class ExpFlow(nn.Module):
    def __init__(self, dim: int, n_classes: int, frame_dim: int, tau: int, steps: int, hidden: int, heads: int,
                 layers: int, ffn: int, window: int, nu: float, prior_seed: int):
        super().__init__()
        self.nu = float(nu)
        self.flow = Flow([FlowStep(dim, n_classes, frame_dim, tau, hidden, heads, layers, ffn, window, seed=1000 + k)
                          for k in range(steps)])
        g = torch.Generator().manual_seed(prior_seed)
        self.register_buffer("prior_means", torch.randn(n_classes, dim, generator=g))

    def log_prob(self, x: torch.Tensor, cond: Condition) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(x | c, e) per row, and the latent z = f^-1(x, c)."""
        z, logdet = self.flow(x, cond)
        return student_t_log_prob(z, self.prior_means[cond.emotion], self.nu) + logdet, z

    def sample_latent(self, emotion: int, n: int, rng: "np.random.Generator", temperature: float) -> torch.Tensor:
        """n latents from the emotion's Student-t component: mu + T * g / sqrt(u / nu), u ~ chi2(nu)."""
        d = self.prior_means.shape[1]
        g = torch.from_numpy(rng.standard_normal((n, d))).float()
        u = torch.from_numpy(rng.chisquare(self.nu, size=(n, 1))).float()
        return self.prior_means[emotion].cpu() + temperature * g / torch.sqrt(u / self.nu)

    def inverse(self, z: torch.Tensor, cond: Condition) -> torch.Tensor:
        return self.flow.inverse(z, cond)[0]
