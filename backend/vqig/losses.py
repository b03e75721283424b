"""Image losses of both VQIG stages.

The paper's perceptual loss uses ImageNet VGG19 features; no ImageNet weights ship in any
installed package here (no torchvision, no lpips) and nothing may be downloaded. Substitutes:
- codebook stage: discriminator feature matching (pix2pixHD), L1 between the PatchGAN's
  intermediate features of the real and the reconstructed image;
- generator stage: L1 between the frozen codebook encoder's multi-level features (a face-specific
  feature space learned in stage 1) of the target and the generated frame."""
from __future__ import annotations

import torch
import torch.nn.functional as F

ADVERSARIAL_WEIGHT = 0.8  # model-spec.md


def feature_matching(real_feats, fake_feats) -> torch.Tensor:
    return sum(F.l1_loss(f, r.detach()) for r, f in zip(real_feats, fake_feats)) / len(real_feats)


def encoder_perceptual(encoder, real, fake) -> torch.Tensor:
    with torch.no_grad():
        _, rf = encoder.features(real)
    _, ff = encoder.features(fake)
    return sum(F.l1_loss(f, r) for r, f in zip(rf, ff)) / len(rf)


def hinge_d(real_logits, fake_logits) -> torch.Tensor:
    return 0.5 * (F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean())


def hinge_g(fake_logits) -> torch.Tensor:
    return -fake_logits.mean()
