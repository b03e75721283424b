"""Generator stage of VQIG: predicts the code indices of the driven frame and decodes them.

Spec (model-spec.md, VQIG): I_0 -> E_h -> z_c (frozen codebook stage); a mapping network psi
turns (beta, rho) into motion descriptors sigma; the warped image I_w -> E_w (initialised from
E_h) -> z_w; a fuse MLP phi(z_c, z_w) -> z_f; multi-head cross-attention between z_f and z_c;
AdaIN with sigma at feature and image level; a transformer predicts the 16 x 16 code indices;
D_h decodes; a controllable feature transformation with weight w trades fidelity for sharpness.

Our choice where the paper leaves one: the warping network W is the geometry renderer
(flowvq.render), an explicit 3D dense-correspondence warp of I_0, instead of PIRenderer's learned
flow; the generator receives I_w from it."""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from .config import GeneratorConfig
from .vqgan import VQGAN, Encoder


class MappingNet(nn.Module):
    """psi (PIRenderer): a window of (beta, rho) frames -> motion descriptor sigma."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        d = cfg.motion_dim
        k = min(3, cfg.motion_window)
        self.first = nn.Conv1d(cfg.coeff_dim, d, k, padding=k // 2)
        self.body = nn.Sequential(nn.LeakyReLU(0.1), nn.Conv1d(d, d, k, padding=k // 2), nn.LeakyReLU(0.1),
                                  nn.Conv1d(d, d, k, padding=k // 2), nn.LeakyReLU(0.1))

    def forward(self, coeffs):  # (B, W, coeff_dim) -> (B, motion_dim)
        h = self.first(coeffs.transpose(1, 2))
        return (h + self.body(h)).mean(-1)


class AdaIN(nn.Module):
    """Adaptive instance norm: normalise each channel over space, rescale from sigma."""

    def __init__(self, channels: int, motion_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.affine = nn.Linear(motion_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)  # starts as plain instance norm with unit scale

    def forward(self, x, sigma):
        gamma, beta = self.affine(sigma)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + gamma) + beta


class FuseMLP(nn.Module):
    """phi: 3-layer MLP over the concatenated per-position codes [z_c, z_w] -> z_f."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, 2 * dim), nn.GELU(),
                                 nn.Linear(2 * dim, dim))

    def forward(self, z_c, z_w):  # tokens (B, L, C)
        return self.net(torch.cat([z_c, z_w], dim=-1))


class CrossAttention(nn.Module):
    """MHCA: z_f queries the source codes z_c (identity and texture come back from the source)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.nq, self.nk = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, z_f, z_c):
        kv = self.nk(z_c)
        h = z_f + self.attn(self.nq(z_f), kv, kv, need_weights=False)[0]
        return h + self.ff(h)


class CFT(nn.Module):
    """Controllable feature transformation (CodeFormer): F_d + w * (alpha * F_d + beta), with
    (alpha, beta) from the warped-image encoder's features; AdaIN(sigma) injects the motion at
    image level."""

    def __init__(self, channels: int, motion_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(channels, 2 * channels, 3, padding=1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)  # w has no effect until trained
        self.adain = AdaIN(channels, motion_dim)

    def forward(self, dec, enc, sigma, w: float):
        alpha, beta = self.net(torch.cat([dec, self.adain(enc, sigma)], dim=1)).chunk(2, dim=1)
        return dec + w * (dec * alpha + beta)


class VQIGGenerator(nn.Module):
    """Holds the frozen codebook stage (vqgan) and the trainable generator-stage modules."""

    def __init__(self, cfg: GeneratorConfig, vqgan: VQGAN | None = None):
        super().__init__()
        self.cfg = cfg
        cb = cfg.codebook
        self.vqgan = vqgan if vqgan is not None else VQGAN(cb)
        for p in self.vqgan.parameters():
            p.requires_grad_(False)  # the codebook stage stays frozen
        self.warped_encoder: Encoder = copy.deepcopy(self.vqgan.encoder)  # E_w starts as E_h
        for p in self.warped_encoder.parameters():
            p.requires_grad_(True)
        d, L = cb.embed_dim, cb.latent_size ** 2
        self.mapping = MappingNet(cfg)
        self.fuse = FuseMLP(d)
        self.cross = CrossAttention(d, cfg.heads)
        self.feat_adain = AdaIN(d, cfg.motion_dim)
        self.pos = nn.Parameter(torch.zeros(1, L, d))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, cfg.transformer_ff, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.transformer_layers, enable_nested_tensor=False)
        self.to_logits = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cb.n_codes, bias=False))
        enc_ch = [cb.base_channels * m for m in cb.channel_mult]
        # decoder level i (coarse -> fine) meets encoder level len-1-i of the same resolution
        self.cft = nn.ModuleList(CFT(c, cfg.motion_dim) for c in enc_ch[::-1])

    def train(self, mode: bool = True):
        super().train(mode)
        self.vqgan.eval()  # frozen stage: no batch-statistics drift, no dropout
        return self

    @staticmethod
    def _tokens(z):
        return z.flatten(2).transpose(1, 2)

    def predict(self, source, warped, coeffs):
        """-> dict(logits (B,L,N), z_f (B,C,h,w) fused features, sigma, enc_feats, z_c)."""
        with torch.no_grad():
            z_c, _, _ = self.vqgan.encode(source)
        z_w, enc_feats = self.warped_encoder.features(warped)
        sigma = self.mapping(coeffs)
        b, c, h, w = z_w.shape
        z_f = self.fuse(self._tokens(z_c), self._tokens(z_w))
        z_f = self.cross(z_f, self._tokens(z_c))
        z_f = self.feat_adain(z_f.transpose(1, 2).reshape(b, c, h, w), sigma)
        logits = self.to_logits(self.transformer(self._tokens(z_f) + self.pos))
        return {"logits": logits, "z_f": z_f, "sigma": sigma, "enc_feats": enc_feats, "z_c": z_c}

    def decode(self, indices, enc_feats, sigma, w: float):
        """Look up the predicted codes and decode them, modulated by the warped image (weight w)."""
        z_q = self.vqgan.quantizer.get_codebook_feat(indices)
        n = len(self.cft)

        def transform(i, h):
            return self.cft[i](h, enc_feats[n - 1 - i], sigma, w)

        return self.vqgan.decoder(z_q, transform if w > 0 else None)

    def forward(self, source, warped, coeffs, w: float = 0.5):
        out = self.predict(source, warped, coeffs)
        s = self.cfg.codebook.latent_size
        indices = out["logits"].argmax(-1).view(-1, s, s)
        out["indices"] = indices
        out["image"] = self.decode(indices, out["enc_feats"], out["sigma"], w)
        return out


def to_tensor(images: np.ndarray, device) -> torch.Tensor:
    """uint8 (B,S,S,3) -> float (B,3,S,S) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_images(x: torch.Tensor) -> np.ndarray:
    return x.detach().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def refine(gen: VQIGGenerator, source: np.ndarray, warped: np.ndarray, coeff_window: np.ndarray, w: float = 0.5,
           device=None) -> np.ndarray:
    """One or more warped crops (B,S,S,3) uint8 -> refined crops; source (S,S,3) is the portrait crop."""
    dev = next(gen.parameters()).device if device is None else torch.device(device)
    b = len(warped)
    src = to_tensor(np.repeat(source[None], b, 0), dev)
    out = gen(src, to_tensor(warped, dev), torch.from_numpy(np.asarray(coeff_window, np.float32)).to(dev), w=w)
    return to_images(out["image"])
