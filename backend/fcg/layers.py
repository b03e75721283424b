"""Flow layers of one MoGlow/ExpFlow step: multi-actnorm -> LU 1x1 convolution -> affine coupling.

Every layer maps `forward(x, cond) -> (y, logdet)` (data -> latent) and `inverse(y, cond) -> (x, logdet)`
with logdet of shape (batch,) for the direction taken. `cond` is a `Condition`: the emotion class per
row (multi-actnorm) and the context the coupling's transformer reads. State that must be saved
(actnorm's data-dependent-init flag, the LU permutation) lives in buffers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Condition:
    emotion: torch.Tensor  # (B,) long: class index for multi-actnorm (all zeros for a one-class flow)
    frame: torch.Tensor  # (B, Cf): per-frame context (audio feature, emotion feature, source expression)
    prev: torch.Tensor  # (B, tau, D): previous frames (zeros where context dropout removed them)


class MultiActNorm(nn.Module):
    """Per-class affine normalisation y = (x + bias_e) * exp(log_scale_e); data-dependent init."""

    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(n_classes, dim))
        self.log_scale = nn.Parameter(torch.zeros(n_classes, dim))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        # every class starts from the same statistics (the paper: same parameters, then learned)
        mean = x.mean(0)
        std = x.std(0).clamp_min(1e-3) if x.shape[0] > 1 else torch.ones_like(mean)
        self.bias.copy_((-mean).expand_as(self.bias))
        self.log_scale.copy_((-torch.log(std)).expand_as(self.log_scale))
        self.initialized.fill_(True)

    def forward(self, x, cond: Condition):
        if self.training and not bool(self.initialized):
            self.initialize(x)
        ls = self.log_scale[cond.emotion]
        return (x + self.bias[cond.emotion]) * torch.exp(ls), ls.sum(-1)

    def inverse(self, y, cond: Condition):
        ls = self.log_scale[cond.emotion]
        return y * torch.exp(-ls) - self.bias[cond.emotion], -ls.sum(-1)


class InvConvLU(nn.Module):
    """Invertible 1x1 convolution W = P L (U + diag(sign * exp(log_s))), Glow's LU parameterisation."""

    def __init__(self, dim: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(dim, dim), -1))
        self.lower = nn.Parameter(lower.float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(torch.abs(s)).float())

    def weight(self) -> torch.Tensor:
        eye = torch.eye(self.lower.shape[0], dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def forward(self, x, cond: Condition = None):
        return x @ self.weight().T, self.log_s.sum().expand(x.shape[0])

    def inverse(self, y, cond: Condition = None):
        return y @ torch.linalg.inv(self.weight()).T, (-self.log_s.sum()).expand(y.shape[0])


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: masked multi-head self-attention, then a position-wise FFN.

    Written out (not nn.TransformerEncoderLayer) to keep per-call overhead low: sampling runs it
    once per flow step per frame.
    """

    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, ffn)
        self.ff2 = nn.Linear(ffn, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """last_only: compute the output of the last token only (keys/values still from all tokens;
        `mask` is then the last row); the conditioner's last layer needs no more. No shape
        arithmetic here: a traced frame step would replay it as extra ops on every call."""
        q, k, v = self.qkv(self.norm1(x)).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
        if last_only:
            q, x = q.narrow(2, -1, 1), x.narrow(1, -1, 1)  # narrow: one op where [:, -1:] is two
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(a.transpose(1, 2).flatten(2))
        return x + self.ff2(F.gelu(self.ff1(self.norm2(x))))


class TransformerConditioner(nn.Module):
    """F(h1, c) -> (t, raw_s): a 2-layer transformer over the local context sequence.

    Tokens: the tau previous frames, then the current frame (h1 + per-frame context). Attention is
    local and causal: each token sees itself and the `window` tokens before it, so the current frame
    reads the recent past and its own audio/emotion. The output is read at the current token.
    """

    def __init__(self, half: int, out: int, frame_dim: int, data_dim: int, tau: int, hidden: int,
                 heads: int, layers: int, ffn: int, window: int):
        super().__init__()
        self.heads = heads
        self.in_h = nn.Linear(half, hidden)
        self.in_frame = nn.Linear(frame_dim, hidden, bias=False)
        self.in_prev = nn.Linear(data_dim, hidden)
        self.pos = nn.Parameter(torch.randn(tau + 1, hidden) * 0.02)
        self.layers = nn.ModuleList(TransformerLayer(hidden, heads, ffn) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, 2 * out)
        nn.init.zeros_(self.out.weight)  # each step starts as the identity (Glow, MoGlow)
        nn.init.zeros_(self.out.bias)
        n = tau + 1
        i = torch.arange(n)
        allowed = (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] <= window)
        self.register_buffer("mask", torch.where(allowed, 0.0, float("-inf")), persistent=False)
        self.register_buffer("mask_last", self.mask[-1:].clone(), persistent=False)

    def forward(self, h1: torch.Tensor, cond: Condition) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_tokens(h1, self.in_frame(cond.frame), self.in_prev(cond.prev))

    def from_tokens(self, h1: torch.Tensor, frame_token: torch.Tensor, prev_tokens: torch.Tensor):
        """The same map with the context's projections given: the sampler computes the frame part for
        all frames at once and keeps the previous frames' tokens in a rolling buffer."""
        cur = self.in_h(h1) + frame_token
        tokens = torch.cat([prev_tokens, cur.unsqueeze(1)], dim=1) + self.pos
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            tokens = layer(tokens, self.mask_last if i == last else self.mask, last_only=i == last)
        t, s = self.out(self.norm(tokens.select(1, -1))).chunk(2, dim=-1)
        return t, s


class AffineCoupling(nn.Module):
    """h = [h1, (h2 + t) * s] with (t, s) = F(h1, c); s = exp(clamp * tanh(raw / clamp))."""

    def __init__(self, dim: int, frame_dim: int, tau: int, hidden: int, heads: int, layers: int, ffn: int,
                 window: int, scale_clamp: float = 2.0):
        super().__init__()
        self.half = dim // 2
        self.sizes = [self.half, dim - self.half]  # a constant: shape arithmetic would be traced as ops
        self.clamp = scale_clamp
        self.net = TransformerConditioner(self.half, dim - self.half, frame_dim, dim, tau, hidden, heads,
                                          layers, ffn, window)

    def _ts(self, h1, cond):
        t, raw = self.net(h1, cond)
        return t, self.clamp * torch.tanh(raw / self.clamp)

    def inverse_from_tokens(self, y, frame_token, prev_tokens):
        h1, h2 = y.split(self.sizes, dim=1)  # one op per frame step where slicing takes four
        t, raw = self.net.from_tokens(h1, frame_token, prev_tokens)
        return torch.cat([h1, h2 * torch.exp(-self.clamp * torch.tanh(raw / self.clamp)) - t], dim=-1)

    def forward(self, x, cond: Condition):
        h1, h2 = x[:, :self.half], x[:, self.half:]
        t, log_s = self._ts(h1, cond)
        return torch.cat([h1, (h2 + t) * torch.exp(log_s)], dim=-1), log_s.sum(-1)

    def inverse(self, y, cond: Condition):
        h1, h2 = y[:, :self.half], y[:, self.half:]
        t, log_s = self._ts(h1, cond)
        return torch.cat([h1, h2 * torch.exp(-log_s) - t], dim=-1), -log_s.sum(-1)


class FlowStep(nn.Module):
    """One step, data -> latent: multi-actnorm, LU 1x1 convolution, affine coupling."""

    def __init__(self, dim: int, n_classes: int, frame_dim: int, tau: int, hidden: int, heads: int,
                 layers: int, ffn: int, window: int, seed: int):
        super().__init__()
        self.actnorm = MultiActNorm(dim, n_classes)
        self.conv = InvConvLU(dim, seed=seed)
        self.coupling = AffineCoupling(dim, frame_dim, tau, hidden, heads, layers, ffn, window)

    def forward(self, x, cond: Condition):
        x, ld1 = self.actnorm(x, cond)
        x, ld2 = self.conv(x, cond)
        x, ld3 = self.coupling(x, cond)
        return x, ld1 + ld2 + ld3

    def inverse(self, y, cond: Condition):
        y, ld3 = self.coupling.inverse(y, cond)
        y, ld2 = self.conv.inverse(y, cond)
        y, ld1 = self.actnorm.inverse(y, cond)
        return y, ld1 + ld2 + ld3


class Flow(nn.Module):
    """K steps; forward sums logdets, inverse runs the steps in reverse order."""

    def __init__(self, steps: list[FlowStep]):
        super().__init__()
        self.steps = nn.ModuleList(steps)

    def forward(self, x, cond: Condition):
        logdet = x.new_zeros(x.shape[0])
        for step in self.steps:
            x, ld = step(x, cond)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z, cond: Condition):
        logdet = z.new_zeros(z.shape[0])
        for step in reversed(self.steps):
            z, ld = step.inverse(z, cond)
            logdet = logdet + ld
        return z, logdet

    @torch.no_grad()
    def plan(self, emotion: torch.Tensor) -> "InversePlan":
        """What the inverse needs that does not change between frames (actnorm per class, W^-1), in
        the order the inverse runs; sampling computes it once per batch of takes."""
        steps = list(reversed(self.steps))
        return InversePlan(
            couplings=[s.coupling for s in steps],
            w_inv_t=[torch.linalg.inv(s.conv.weight()).T.contiguous() for s in steps],
            inv_scale=[torch.exp(-s.actnorm.log_scale[emotion]) for s in steps],
            bias=[s.actnorm.bias[emotion] for s in steps],
            prev_weight=torch.stack([s.coupling.net.in_prev.weight.T for s in steps]),  # (K, D, H)
            prev_bias=torch.stack([s.coupling.net.in_prev.bias for s in steps])[:, None, None, :],
        )

    def frame_tokens(self, frame: torch.Tensor, plan: "InversePlan") -> torch.Tensor:
        """(..., Cf) per-frame context -> (K, ..., H) its projection for every step (plan order)."""
        return torch.stack([c.net.in_frame(frame) for c in plan.couplings])

    @staticmethod
    def prev_tokens(prev: torch.Tensor, plan: "InversePlan") -> torch.Tensor:
        """(B, n, D) frames -> (K, B, n, H) their previous-frame tokens for every step."""
        return torch.einsum("bnd,kdh->kbnh", prev, plan.prev_weight) + plan.prev_bias

    @staticmethod
    def shift_tokens(shift: torch.Tensor, plan: "InversePlan") -> torch.Tensor:
        """(..., B, 1, D) display -> (K, ..., B, 1, H): subtracted from a frame's tokens (no bias: a
        difference of two frames' tokens)."""
        return torch.einsum("...bnd,kdh->k...bnh", shift, plan.prev_weight)

    @staticmethod
    def inverse_planned(z, frame_tokens: torch.Tensor, prev_tokens: torch.Tensor, plan: "InversePlan",
                        inv_scale=None, bias=None):
        """The inverse without logdet from precomputed tokens; equal to inverse(z, cond)[0]. inv_scale and
        bias (K, B, D): the actnorm rows to use instead of the plan's (the sampler passes them per frame)."""
        inv_scale = plan.inv_scale if inv_scale is None else inv_scale
        bias = plan.bias if bias is None else bias
        for k, coupling in enumerate(plan.couplings):
            z = coupling.inverse_from_tokens(z, frame_tokens[k], prev_tokens[k])
            z = torch.addcmul(-bias[k], z @ plan.w_inv_t[k], inv_scale[k])
        return z


@dataclass
class InversePlan:
    couplings: list
    w_inv_t: list
    inv_scale: list
    bias: list
    prev_weight: torch.Tensor
    prev_bias: torch.Tensor


def student_t_log_prob(z: torch.Tensor, mean: torch.Tensor, nu: float) -> torch.Tensor:
    """log density of a multivariate Student-t with identity scale, per row."""
    d = z.shape[-1]
    sq = ((z - mean) ** 2).sum(-1)
    return (math.lgamma((nu + d) / 2) - math.lgamma(nu / 2) - d / 2 * math.log(nu * math.pi)
            - (nu + d) / 2 * torch.log1p(sq / nu))


def gaussian_log_prob(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z ** 2).sum(-1) - z.shape[-1] / 2 * math.log(2 * math.pi)
