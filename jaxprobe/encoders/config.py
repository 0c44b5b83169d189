"""The architecture of one encoder (``ViTConfig``), kept free of JAX so registries and readers import it cheaply."""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    """Architecture of one encoder, read from the checkpoint's own config (never from constants)."""

    family: str  # a name in ``families`` ("dinov2" | "siglip" | "timm_vit")
    image_size: int  # native input size: the position table holds (image_size // patch_size)^2 patch slots
    patch_size: int
    width: int
    depth: int
    num_heads: int
    mlp_dim: int
    layer_norm_eps: float = 1e-6
    gelu_approximate: bool = False  # tanh GELU (SigLIP) vs exact erf GELU (DINOv2, timm ViT)
    qkv_bias: bool = True
    layerscale: bool = False  # DINOv2's per-channel residual scales
    class_token: bool = True  # a CLS token with its own slot in the position table
    pool: str = "cls"  # "cls": global = final-normed CLS; "map": SigLIP attention-pooling head
    proj_dim: int | None = None  # timm/open_clip: bias-free projection of the pooled token
    pos_interp: str = "torch_bicubic"  # how the reference resamples positions at a non-native size

    def __post_init__(self):
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
        if self.pool not in ("cls", "map"):
            raise ValueError(f"pool must be 'cls' or 'map', got {self.pool!r}")
        if self.pool == "cls" and not self.class_token:
            raise ValueError("pool='cls' needs a class token")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def global_dim(self) -> int:
        return self.proj_dim or self.width

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ViTConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"ViTConfig: unknown keys {sorted(unknown)}")
        return cls(**d)
