"""DINOv2 (RAD-DINO): CLS token + patch tokens, learned positions with a CLS slot, LayerScale, exact GELU.

Matches transformers' ``Dinov2Model``: global = ``last_hidden_state[:, 0]`` and patches =
``last_hidden_state[:, 1:]``, both after the final LayerNorm. At a non-native input size the patch part of the
position table is resampled with torch bicubic (a = -0.75) in float32; the CLS slot is kept as it is.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from .posembed import resample_grid
from .transformer import PatchEmbed, Transformer, ViTConfig, layer_norm, trunc_normal


class Dinov2Encoder(nnx.Module):
    def __init__(self, cfg: ViTConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg = cfg
        self.dtype = dtype
        g = cfg.grid
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.width, dtype, rngs)
        self.cls_token = nnx.Param(trunc_normal(rngs, (1, 1, cfg.width)))
        # Unused at inference (no masked positions); kept so converted checkpoints round-trip whole.
        self.mask_token = nnx.Param(jnp.zeros((1, cfg.width)))
        self.pos_embed = nnx.Param(trunc_normal(rngs, (1, 1 + g * g, cfg.width)))
        self.encoder = Transformer(cfg, dtype, rngs)
        self.norm = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs)

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
        return x[:, 0], x[:, 1:].reshape(b, gh, gw, d)
