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

from .posembed import resample_grid
from .transformer import PatchEmbed, Transformer, ViTConfig, layer_norm, linear, trunc_normal


class TimmViTEncoder(nnx.Module):
    def __init__(self, cfg: ViTConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg = cfg
        g = cfg.grid
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.width, dtype, rngs)
        self.cls_token = nnx.Param(trunc_normal(rngs, (1, 1, cfg.width), std=1e-6))
        self.pos_embed = nnx.Param(trunc_normal(rngs, (1, 1 + g * g, cfg.width)))
        self.encoder = Transformer(cfg, dtype, rngs)
        self.norm = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs)
        self.proj = linear(cfg.width, cfg.proj_dim, dtype, rngs, use_bias=False) if cfg.proj_dim else None

    def positions(self, gh: int, gw: int) -> jax.Array:
        pos = self.pos_embed[...]
        g = self.cfg.grid
        patch = resample_grid(pos[0, 1:].reshape(g, g, -1), (gh, gw), self.cfg.pos_interp)
        return jnp.concatenate([pos[:, :1], patch.reshape(1, gh * gw, -1)], axis=1)

    def __call__(self, pixels: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = self.patch_embed(pixels)
        b, gh, gw, d = x.shape
        cls = jnp.broadcast_to(self.cls_token[...].astype(x.dtype), (b, 1, d))
        x = jnp.concatenate([cls, x.reshape(b, gh * gw, d)], axis=1)
        x = x + self.positions(gh, gw).astype(x.dtype)
        x = self.norm(self.encoder(x))
        pooled = x[:, 0]
        if self.proj is not None:
            pooled = self.proj(pooled)
        return pooled, x[:, 1:].reshape(b, gh, gw, d)
