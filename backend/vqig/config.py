"""Sizes of the two VQIG stages. Defaults are the paper's (512 px, 16 x 16 x 256 latent,
1024 codes); tests and CPU runs use `tiny()` configs of the same architecture."""
from __future__ import annotations

from dataclasses import dataclass, replace

from flowvq_shared.channels import N_EXPRESSION, N_POSE


@dataclass(frozen=True)
class CodebookConfig:
    image_size: int = 512
    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2, 4, 4, 8)  # 5 downsamplings: 512 -> 16
    res_blocks: int = 2
    embed_dim: int = 256
    n_codes: int = 1024
    beta: float = 0.25  # weight of ||z_h - sg(z_c)||^2 (the paper's feature loss)
    disc_channels: int = 64
    disc_layers: int = 3

    def __post_init__(self):
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
        if self.image_size % (2 ** (len(self.channel_mult) - 1)):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2^{len(self.channel_mult) - 1}")

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.channel_mult) - 1)

    @classmethod
    def tiny(cls, **kw) -> "CodebookConfig":
        base = cls(image_size=32, base_channels=16, channel_mult=(1, 2, 2), res_blocks=1,
                   embed_dim=32, n_codes=64, disc_channels=16, disc_layers=2)
        return replace(base, **kw)


@dataclass(frozen=True)
class GeneratorConfig:
    codebook: CodebookConfig = CodebookConfig()
    coeff_dim: int = N_EXPRESSION + N_POSE  # (beta, rho) per frame
    motion_window: int = 27  # PIRenderer's mapping network sees a window of frames
    motion_dim: int = 256  # sigma, the motion descriptor
    heads: int = 8
    transformer_layers: int = 9  # CodeFormer's code-prediction depth
    transformer_ff: int = 1024
    dropout: float = 0.0

    @classmethod
    def tiny(cls, **kw) -> "GeneratorConfig":
        base = cls(codebook=CodebookConfig.tiny(), motion_window=3, motion_dim=32, heads=4,
                   transformer_layers=2, transformer_ff=64)
        return replace(base, **kw)

    @staticmethod
    def from_dict(d: dict) -> "GeneratorConfig":
        d = dict(d)
        d["codebook"] = CodebookConfig(**d["codebook"])
        return GeneratorConfig(**d)
