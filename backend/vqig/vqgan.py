"""Codebook stage: the VQGAN that learns the face codebook by self-reconstruction (taming
-transformers' encoder/decoder, as CodeFormer uses it: 512 px -> 16 x 16 x 256, 1024 codes)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .codebook import VectorQuantizer
from .config import CodebookConfig


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, c // 4) if c >= 8 else 1, c, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.n1, self.c1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.n2, self.c2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x):
        h = self.c1(F.silu(self.n1(x)))
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention at the lowest resolution (taming's AttnBlock)."""

    def __init__(self, c: int):
        super().__init__()
        self.norm, self.qkv, self.proj = _norm(c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.proj(a.transpose(1, 2).reshape(b, c, h, w))


class Encoder(nn.Module):
    """Image in [-1, 1] (B,3,S,S) -> latent (B, embed_dim, S/2^L, S/2^L).

    `features(x)` also returns the output of every resolution level (fine to coarse), which the
    generator's controllable feature transformation and the perceptual loss read."""

    def __init__(self, cfg: CodebookConfig):
        super().__init__()
        chs = [cfg.base_channels * m for m in cfg.channel_mult]
        self.conv_in = nn.Conv2d(3, chs[0], 3, padding=1)
        self.levels = nn.ModuleList()
        c = chs[0]
        for i, co in enumerate(chs):
            blocks = []
            for _ in range(cfg.res_blocks):
                blocks.append(ResBlock(c, co))
                c = co
            down = nn.Conv2d(c, c, 3, stride=2, padding=1) if i < len(chs) - 1 else nn.Identity()
            self.levels.append(nn.ModuleDict({"blocks": nn.Sequential(*blocks), "down": down}))
        self.mid = nn.Sequential(ResBlock(c, c), AttnBlock(c), ResBlock(c, c))
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, cfg.embed_dim, 3, padding=1))

    def features(self, x):
        h = self.conv_in(x)
        feats = []
        for lvl in self.levels:
            h = lvl["blocks"](h)
            feats.append(h)
            h = lvl["down"](h)
        return self.out(self.mid(h)), feats

    def forward(self, x):
        return self.features(x)[0]


class Decoder(nn.Module):
    """Latent -> image in [-1, 1]. `transform(level, h)` lets the generator modulate the features
    of each resolution level (coarse to fine) without a second copy of the decoder."""

    def __init__(self, cfg: CodebookConfig):
        super().__init__()
        chs = [cfg.base_channels * m for m in cfg.channel_mult][::-1]
        c = chs[0]
        self.conv_in = nn.Conv2d(cfg.embed_dim, c, 3, padding=1)
        self.mid = nn.Sequential(ResBlock(c, c), AttnBlock(c), ResBlock(c, c))
        self.levels = nn.ModuleList()
        for i, co in enumerate(chs):
            blocks = []
            for _ in range(cfg.res_blocks + 1):
                blocks.append(ResBlock(c, co))
                c = co
            up = nn.Conv2d(c, c, 3, padding=1) if i < len(chs) - 1 else nn.Identity()
            self.levels.append(nn.ModuleDict({"blocks": nn.Sequential(*blocks), "up": up}))
        self.channels = chs
        self.out = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1))

    def forward(self, z, transform: Callable[[int, torch.Tensor], torch.Tensor] | None = None):
        h = self.mid(self.conv_in(z))
        for i, lvl in enumerate(self.levels):
            h = lvl["blocks"](h)
            if transform is not None:
                h = transform(i, h)
            if i < len(self.levels) - 1:
                h = lvl["up"](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return torch.tanh(self.out(h))


class VQGAN(nn.Module):
    def __init__(self, cfg: CodebookConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = VectorQuantizer(cfg.n_codes, cfg.embed_dim, cfg.beta)
        self.decoder = Decoder(cfg)

    def encode(self, x):
        """Image -> (quantized z_c, indices (B,h,w), code loss)."""
        return self.quantizer(self.encoder(x))

    def decode(self, z_q):
        return self.decoder(z_q)

    def decode_code(self, indices):
        return self.decoder(self.quantizer.get_codebook_feat(indices))

    def forward(self, x):
        z_q, idx, code_loss = self.encode(x)
        return self.decode(z_q), idx, code_loss


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix / taming's NLayerDiscriminator); `forward` returns the logits and the
    intermediate features, which the feature-matching (perceptual substitute) loss compares."""

    def __init__(self, cfg: CodebookConfig):
        super().__init__()
        c = cfg.disc_channels
        layers = [nn.Sequential(nn.Conv2d(3, c, 4, 2, 1), nn.LeakyReLU(0.2))]
        for i in range(1, cfg.disc_layers + 1):
            co = cfg.disc_channels * min(2 ** i, 8)
            stride = 2 if i < cfg.disc_layers else 1
            layers.append(nn.Sequential(nn.Conv2d(c, co, 4, stride, 1), _norm(co), nn.LeakyReLU(0.2)))
            c = co
        self.layers = nn.ModuleList(layers)
        self.head = nn.Conv2d(c, 1, 4, 1, 1)

    def forward(self, x):
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return self.head(x), feats
