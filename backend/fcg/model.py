"""FCG: audio encoder + emotion encoder + ExpFlow + PoseFlow, with the training loss and the
autoregressive sampler (batched over takes).

Choices where the paper is silent are documented in docs/fcg.md; the numbers live in FCGConfig.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from flowvq_shared.channels import N_EMOTIONS, N_EXPRESSION, N_POSE

from .expflow import ExpFlow
from .features import FeatureConfig, LogMel
from .layers import Condition
from .poseflow import PoseFlow
from .sampler import Chain, FrameStepper


@dataclass(frozen=True)
class FCGConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    exp_dim: int = N_EXPRESSION
    pose_dim: int = N_POSE
    n_emotions: int = N_EMOTIONS
    steps: int = 16  # K
    tau: int = 10  # previous frames in the context
    hidden: int = 32  # conditioner width (ExpFlow): sized for ~40 min of training on 2 shared CPU cores
    heads: int = 8
    layers: int = 2
    ffn: int = 64
    window: int = 4  # local attention: each token sees itself and 4 tokens before it
    pose_hidden: int = 16
    pose_ffn: int = 32
    audio_dim: int = 64  # f_a
    emotion_dim: int = 32  # f_e
    audio_channels: int = 32
    context_dropout: float = 0.7
    nu: float = 50.0
    consistency_weight: float = 1e-3
    prior_seed: int = 20240607
    n_latents: int = 2048  # stored training latents for manifold projection
    # Prior scale that temperature 1 means when sampling. 1.0 = the prior as trained; the shipped
    # checkpoint sets it lower (docs/fcg.md: sweep of lip-sync vs diversity) because iid per-frame
    # noise at full scale jitters the mouth of a model trained for 40 CPU minutes.
    sampling_scale: float = 1.0
    pose_sampling_scale: float = 1.0  # the same for PoseFlow: head motion does not jitter the mouth

    @classmethod
    def from_dict(cls, d: dict) -> "FCGConfig":
        d = dict(d)
        d["features"] = FeatureConfig(**d.get("features", {}))
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


class AudioEncoder(nn.Module):
    """CNN + MLP on the 16x80 mel window -> f_a (the paper's audio encoder; sizes are ours)."""

    def __init__(self, window: int, n_mels: int, out: int, ch: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, ch // 2, 3, stride=(1, 2), padding=1), nn.SiLU(),
            nn.Conv2d(ch // 2, ch, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(ch, ch, 3, stride=2, padding=1), nn.SiLU(),
        )
        flat = ch * math.ceil(window / 4) * math.ceil(math.ceil(n_mels / 2) / 4)
        self.mlp = nn.Sequential(nn.Linear(flat, 128), nn.SiLU(), nn.Linear(128, out))

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        h = self.conv(windows[:, None])
        return self.mlp(h.flatten(1))


class FCGModel(nn.Module):
    def __init__(self, cfg: FCGConfig = FCGConfig()):
        super().__init__()
        self.cfg = cfg
        fc = cfg.features
        self.logmel = LogMel(fc)
        self.audio = AudioEncoder(fc.window_frames, fc.n_mels, cfg.audio_dim, cfg.audio_channels)
        self.emotion = nn.Sequential(nn.Linear(cfg.n_emotions, cfg.emotion_dim), nn.SiLU(),
                                     nn.Linear(cfg.emotion_dim, cfg.emotion_dim))
        exp_frame = cfg.audio_dim + cfg.emotion_dim + cfg.exp_dim
        self.exp = ExpFlow(cfg.exp_dim, cfg.n_emotions, exp_frame, cfg.tau, cfg.steps, cfg.hidden, cfg.heads,
                           cfg.layers, cfg.ffn, cfg.window, cfg.nu, cfg.prior_seed)
        self.pose = PoseFlow(cfg.pose_dim, cfg.audio_dim, cfg.tau, cfg.steps, cfg.pose_hidden, cfg.heads,
                             cfg.layers, cfg.pose_ffn, cfg.window)
        # training latents for manifold projection, filled after training (store_latents)
        self.register_buffer("latents", torch.zeros(cfg.n_latents, cfg.exp_dim))
        self.register_buffer("latent_emotion", torch.full((cfg.n_latents,), -1, dtype=torch.long))
        # the training data's per-channel range: sampled curves are clamped to it (x intensity)
        self.register_buffer("exp_lo", torch.zeros(cfg.exp_dim))
        self.register_buffer("exp_hi", torch.ones(cfg.exp_dim))
        self.register_buffer("pose_std", torch.ones(cfg.pose_dim))
        # each class's display (where its face sits over the reference class's, backend/emotion/adapt.py):
        # the flow reads its own past relative to it, so a class's display does not disturb its speech
        self.register_buffer("display", torch.zeros(cfg.n_emotions, cfg.exp_dim))
        self._stepper: FrameStepper | None = None

    @property
    def stepper(self) -> FrameStepper:
        """The traced frame steps, made on the first sample and kept (valid while the weights stay)."""
        if self._stepper is None:
            self._stepper = FrameStepper(self)
        return self._stepper

    # ---- context --------------------------------------------------------------------------------
    def emotion_feature(self, emotion: torch.Tensor) -> torch.Tensor:
        return self.emotion(F.one_hot(emotion, self.cfg.n_emotions).to(self.latents.dtype))

    def exp_condition(self, f_a, emotion, source, prev) -> Condition:
        frame = torch.cat([f_a, self.emotion_feature(emotion), source], dim=-1)
        return Condition(emotion=emotion, frame=frame, prev=prev)

    def pose_condition(self, f_a, prev) -> Condition:
        return Condition(emotion=torch.zeros(f_a.shape[0], dtype=torch.long, device=f_a.device), frame=f_a, prev=prev)

    # ---- training -------------------------------------------------------------------------------
    def loss(self, batch: dict, n_consistency: int = 0) -> dict:
        """Batch rows are frames with teacher-forced context. If n_consistency > 0, rows [0:n] and
        [n:2n] are frames t and t-1 of the same clips, used for the consistency loss."""
        c = self.cfg
        f_a = self.audio(batch["windows"])
        emotion = batch["emotion"]
        exp_prev, pose_prev = batch["exp_prev"], batch["pose_prev"]
        if self.training and c.context_dropout > 0:
            # drop the previous-frames context (the paper: essential for diversity and sync)
            keep_e = (torch.rand(exp_prev.shape[0], 1, 1, device=exp_prev.device) >= c.context_dropout)
            keep_p = (torch.rand(pose_prev.shape[0], 1, 1, device=pose_prev.device) >= c.context_dropout)
            exp_prev, pose_prev = exp_prev * keep_e, pose_prev * keep_p
        ce = self.exp_condition(f_a, emotion, batch["source"], exp_prev - self.display[emotion][:, None, :])
        cp = self.pose_condition(f_a, pose_prev)
        lp_exp, _ = self.exp.log_prob(batch["exp"], ce)
        lp_pose, _ = self.pose.log_prob(batch["pose"], cp)
        nll_exp = -lp_exp.mean() / c.exp_dim
        nll_pose = -lp_pose.mean() / c.pose_dim
        total = nll_exp + nll_pose
        out = {"nll_exp": nll_exp, "nll_pose": nll_pose}
        if n_consistency > 0:
            n = n_consistency
            rows = torch.arange(2 * n, device=f_a.device)
            sub = Condition(emotion=ce.emotion[rows], frame=ce.frame[rows], prev=ce.prev[rows])
            z = self.exp.prior_means[sub.emotion] + torch.randn(2 * n, c.exp_dim, device=f_a.device)
            x_hat = self.exp.inverse(z, sub)
            x = batch["exp"][rows]
            con = ((x[:n] - x[n:]) - (x_hat[:n] - x_hat[n:])).abs().sum(-1).mean()
            out["consistency"] = con
            total = total + c.consistency_weight * con / c.exp_dim
        out["loss"] = total
        return out

    # ---- sampling -------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, windows: torch.Tensor, emotion: int, source: torch.Tensor, rngs: list,
               temperature: float = 1.0, reference: torch.Tensor | None = None, manifold: bool = False,
               progress=None, cancel=None, emotion_weights: torch.Tensor | None = None, parallel: bool = True,
               display_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """windows (T,16,80); one numpy Generator per take. Returns expression (B,T,64), pose (B,T,6).

        emotion_weights (T, n_emotions): an emotion that changes over time (keys). Everything the flow
        conditions on the class is blended per frame with these weights: the emotion encoder's input,
        each step's class-conditional actnorm and the mixture prior's component mean. `emotion` is
        then the class the takes' noise is drawn with (the first key). display_scale (B,): how strongly
        each take shows its class's display (1 = as learned), inside the first multi-actnorm."""
        c = self.cfg
        dev = windows.device
        b, t_len = len(rngs), windows.shape[0]
        f_a = torch.cat([self.audio(windows[i:i + 512]) for i in range(0, t_len, 512)])  # (T, audio_dim)
        emo = torch.full((b,), emotion, dtype=torch.long, device=dev)
        f_e = self.emotion_feature(emo)
        src = source.to(dev).expand(b, -1)
        # latents for every frame, drawn up front from each take's own generator
        t_exp, t_pose = temperature * c.sampling_scale, temperature * c.pose_sampling_scale
        z_exp = torch.stack([self.exp.sample_latent(emotion, t_len, r, t_exp) for r in rngs], 1).to(dev)
        z_pose = torch.stack([self.pose.sample_latent(t_len, r, t_pose) for r in rngs], 1).to(dev)
        if reference is not None:
            # emotion transfer: the reference's latent replaces the component mean (noise kept for takes)
            z_ref = self._reference_latent(reference.to(dev), emotion, source.to(dev), f_a)
            z_exp = z_exp - self.exp.prior_means[emotion] + z_ref
        if manifold:  # projection reads only the latents, not the generated frames: all frames at once
            z_exp = torch.stack([self.project(z_exp[t], emotion) for t in range(t_len)])
        ef, pf = self.exp.flow, self.pose.flow
        exp_plan = ef.plan(emo)
        pose_plan = pf.plan(torch.zeros(b, dtype=torch.long, device=dev))
        # context projections that do not depend on generated frames: computed for all frames at once
        frame_exp = torch.cat([f_a, torch.cat([f_e[:1], src[:1]], dim=-1).expand(t_len, -1)], dim=-1)
        inv_scale, bias = torch.stack(exp_plan.inv_scale), torch.stack(exp_plan.bias)
        shift = self.display[emo][:, None, :]  # (B, 1, D): what each new frame's context is read against
        if emotion_weights is not None:
            if reference is not None or manifold:
                raise ValueError("emotion keys do not combine with a reference or manifold projection")
            w = emotion_weights.to(dev, self.latents.dtype)  # (T, E)
            frame_exp = torch.cat([f_a, self.emotion(w), src[:1].expand(t_len, -1)], dim=-1)
            # the mixture component's mean moves with the emotion; each take keeps its own noise
            z_exp = z_exp - self.exp.prior_means[emotion] + (w @ self.exp.prior_means)[:, None, :]
            steps = list(reversed(ef.steps))  # plan order
            log_scale = torch.stack([w @ st.actnorm.log_scale for st in steps], 1)  # (T, K, D)
            inv_scale = torch.exp(-log_scale)[:, :, None, :].expand(-1, -1, b, -1)
            bias = torch.stack([w @ st.actnorm.bias for st in steps], 1)[:, :, None, :].expand(-1, -1, b, -1)
            shift = (w @ self.display)[:, None, None, :].expand(-1, b, 1, -1)  # (T, B, 1, D)
        if display_scale is not None:  # take k shows s_k * display: b_e + (1 - s_k) * display (first step)
            sc = display_scale.to(dev, self.latents.dtype)
            shown = shift[..., 0, :]  # (B, D) or (T, B, D): the display each frame is read against
            bias = bias.clone()
            bias[..., -1, :, :] = bias[..., -1, :, :] + (1 - sc)[:, None] * shown
            shift = shift * sc[:, None, None]
        # the context starts at the source face in every class (a display is relative to it)
        exp_chain = Chain(z=z_exp, frame_tok=ef.frame_tokens(frame_exp, exp_plan),
                          prev_tok=ef.prev_tokens(src[:, None, :].expand(b, c.tau, c.exp_dim), exp_plan),
                          inv_scale=inv_scale, bias=bias, shift_tok=ef.shift_tokens(shift, exp_plan))
        pose_chain = Chain(z=z_pose, frame_tok=pf.frame_tokens(f_a, pose_plan),
                           prev_tok=pf.prev_tokens(torch.zeros(b, c.tau, c.pose_dim, device=dev), pose_plan),
                           inv_scale=torch.stack(pose_plan.inv_scale), bias=torch.stack(pose_plan.bias),
                           shift_tok=torch.zeros(len(pose_plan.couplings), b, 1, pose_plan.prev_weight.shape[2],
                                                 device=dev))
        traced = not any(p.requires_grad for p in self.parameters())
        return self.stepper.run(exp_chain, pose_chain, progress=progress, cancel=cancel, traced=traced,
                                parallel=parallel)

    def _reference_latent(self, reference, emotion, source, f_a) -> torch.Tensor:
        """z_ref = f^-1(beta_ref, c): context = mean audio feature, reference as its own past."""
        c = self.cfg
        emo = torch.tensor([emotion], device=reference.device)
        prev = (reference - self.display[emotion])[None, None, :].expand(1, c.tau, c.exp_dim)
        cond = self.exp_condition(f_a.mean(0, keepdim=True), emo, source[None], prev)
        return self.exp.flow(reference[None].float(), cond)[0][0]

    def project(self, z: torch.Tensor, emotion: int, k: int = 8) -> torch.Tensor:
        """Manifold projection: replace each z by its best affine combination of its k nearest stored
        training latents of the same emotion (weights summing to 1, LLE-style)."""
        pool = self.latents[self.latent_emotion == emotion]
        if pool.shape[0] < k:
            pool = self.latents[self.latent_emotion >= 0]
        if pool.shape[0] < k:
            return z
        d = torch.cdist(z, pool)
        idx = d.topk(k, largest=False).indices  # (B, k)
        nb = pool[idx]  # (B, k, D)
        diff = z[:, None, :] - nb
        gram = diff @ diff.transpose(1, 2)
        gram = gram + torch.eye(k, device=z.device) * (1e-3 * gram.diagonal(dim1=1, dim2=2).sum(-1, keepdim=True)[..., None] + 1e-6)
        w = torch.linalg.solve(gram, torch.ones(z.shape[0], k, 1, device=z.device))
        w = w / w.sum(1, keepdim=True)
        return (w * nb).sum(1)

    @torch.no_grad()
    def store_latents(self, z: torch.Tensor, emotion: torch.Tensor) -> None:
        n = min(z.shape[0], self.cfg.n_latents)
        self.latents.zero_()
        self.latent_emotion.fill_(-1)
        self.latents[:n] = z[:n]
        self.latent_emotion[:n] = emotion[:n]
