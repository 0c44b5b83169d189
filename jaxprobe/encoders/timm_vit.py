"""timm ViT as wrapped by open_clip (BiomedCLIP's image tower): CLS, positions with a CLS slot, exact GELU.

Matches ``open_clip.timm_model.TimmModel(..., pool="", proj="linear", proj_bias=False)``: patches =
``trunk.forward_features(x)[:, 1:]`` (after the final norm, before projection), global = the final-normed CLS
token times ``head.proj`` (bias-free), i.e. ``encode_image(normalize=False)``. At a non-native size the patch
part of the position table is resampled as timm's ``resample_abs_pos_embed`` does (bicubic, antialias=True).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from .config import ViTConfig
from .transformer import ClassTokenEncoder, PatchEmbed, Transformer, layer_norm, linear, trunc_normal


class TimmViTEncoder(ClassTokenEncoder):
    def __init__(self, cfg: ViTConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg = cfg
        g = cfg.grid
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.width, dtype, rngs)
        self.cls_token = nnx.Param(trunc_normal(rngs, (1, 1, cfg.width), std=1e-6))
        self.pos_embed = nnx.Param(trunc_normal(rngs, (1, 1 + g * g, cfg.width)))
        self.encoder = Transformer(cfg, dtype, rngs)
        self.norm = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs)
        self.proj = linear(cfg.width, cfg.proj_dim, dtype, rngs, use_bias=False) if cfg.proj_dim else None

    def __call__(self, pixels: jax.Array) -> tuple[jax.Array, jax.Array]:
        x, gh, gw = self.tokens(pixels)
        pooled = x[:, 0] if self.proj is None else self.proj(x[:, 0])
        return pooled, x[:, 1:].reshape(x.shape[0], gh, gw, -1)
