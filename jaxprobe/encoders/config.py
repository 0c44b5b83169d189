"""The architecture of one encoder (``ViTConfig``), kept free of JAX so registries and readers import it cheaply."""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    """Architecture of one encoder, read from the checkpoint's own config (never from constants)."""

    family: str  # a name in ``families`` ("dinov2" | "dinov3" | "siglip" | "timm_vit" | "clip" | "open_clip")
    image_size: int  # native input size: the position table holds (image_size // patch_size)^2 patch slots
    patch_size: int
    width: int
    depth: int
    num_heads: int
    mlp_dim: int
    layer_norm_eps: float = 1e-6
    gelu_approximate: bool = False  # tanh GELU (SigLIP) vs exact erf GELU (DINOv2, timm ViT)
    quick_gelu: bool = False  # x * sigmoid(1.702 x) instead of GELU (OpenAI CLIP towers)
    qkv_bias: bool = True
    layerscale: bool = False  # DINOv2's per-channel residual scales
    class_token: bool = True  # a CLS token with its own slot in the position table
    pool: str = "cls"  # "cls": global = final-normed CLS; "map": SigLIP attention-pooling head
    proj_dim: int | None = None  # timm/open_clip: bias-free projection of the pooled token
    pos_interp: str = "torch_bicubic"  # how the reference resamples positions at a non-native size
    registers: int = 0  # register tokens after the CLS token (DINOv2 with registers, DINOv3); not in the output
    rope_theta: float | None = None  # DINOv3: 2-D rotary positions on the patch tokens instead of a table
    pre_norm: bool = False  # a LayerNorm on the tokens before the first block (CLIP's pre_layrnorm / ln_pre)
    norm_patches: bool = True  # False: patch tokens are the last block's output (transformers' CLIP), no final norm

    def __post_init__(self):
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")
        if self.pool not in ("cls", "map"):
            raise ValueError(f"pool must be 'cls' or 'map', got {self.pool!r}")
        if self.pool == "cls" and not self.class_token:
            raise ValueError("pool='cls' needs a class token")
        if self.quick_gelu and self.gelu_approximate:
            raise ValueError("quick_gelu and gelu_approximate are two different activations; set one")
        if self.rope_theta is not None and (self.width // self.num_heads) % 4:
            raise ValueError(f"2-D rotary positions need a head size divisible by 4, got {self.width // self.num_heads}")

    @property
    def activation(self) -> str:
        """The MLP's activation: "quick_gelu", "gelu_tanh" or "gelu" (exact, erf)."""
        return "quick_gelu" if self.quick_gelu else "gelu_tanh" if self.gelu_approximate else "gelu"

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
