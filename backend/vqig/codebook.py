"""Nearest-entry vector quantiser with a straight-through gradient (VQ-VAE / taming)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VectorQuantizer(nn.Module):
    def __init__(self, n_codes: int, dim: int, beta: float = 0.25):
        super().__init__()
        self.n_codes, self.dim, self.beta = n_codes, dim, beta
        self.embedding = nn.Embedding(n_codes, dim)
        self.embedding.weight.data.uniform_(-1.0 / n_codes, 1.0 / n_codes)

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, H, W) index of the nearest codebook entry."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, self.dim)
        w = self.embedding.weight
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ w.t() + w.pow(2).sum(1)[None]
        return d.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    def forward(self, z: torch.Tensor):
        """Returns (quantized, indices, loss); loss = ||sg(z_h) - z_c||^2 + beta ||z_h - sg(z_c)||^2."""
        idx = self.indices(z)
        z_q = self.get_codebook_feat(idx)
        loss = F.mse_loss(z_q, z.detach()) + self.beta * F.mse_loss(z, z_q.detach())
        z_q = z + (z_q - z).detach()  # straight-through: the decoder's gradient reaches the encoder
        return z_q, idx, loss

    def get_codebook_feat(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, H, W) indices -> (B, C, H, W) codebook entries."""
        return self.embedding(indices).permute(0, 3, 1, 2).contiguous()
