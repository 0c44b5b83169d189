"""DINOv3 ViT: CLS + register tokens + patch tokens, no position table — 2-D rotary positions on the patch queries
and keys — LayerScale, exact GELU.

Matches transformers' ``DINOv3ViTModel`` (inference): global = ``pooler_output`` = the final-normed CLS token,
patches = the final-normed tokens after the CLS and the registers. Rotary positions are defined on the patch
centres in [-1, 1], so any grid size is native: nothing is resampled at another input size. The training-time
coordinate augmentations (shift, jitter, rescale) do not apply at inference.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from .config import ViTConfig
from .transformer import PatchEmbed, Transformer, layer_norm, rope_tables, trunc_normal


class Dinov3Encoder(nnx.Module):
    def __init__(self, cfg: ViTConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        if cfg.rope_theta is None or not cfg.class_token or cfg.pool != "cls":
            raise ValueError("DINOv3 encoders have a class token and rotary positions (rope_theta)")
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.width, dtype, rngs)
        self.cls_token = nnx.Param(trunc_normal(rngs, (1, 1, cfg.width)))
        self.registers = nnx.Param(trunc_normal(rngs, (1, cfg.registers, cfg.width))) if cfg.registers else None
        self.encoder = Transformer(cfg, dtype, rngs)
        self.norm = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs)

    def __call__(self, pixels: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = self.patch_embed(pixels)
        b, gh, gw, d = x.shape
        prefix = [jnp.broadcast_to(self.cls_token[...].astype(x.dtype), (b, 1, d))]
        if self.registers is not None:
            prefix.append(jnp.broadcast_to(self.registers[...].astype(x.dtype), (b, self.cfg.registers, d)))
        x = jnp.concatenate([*prefix, x.reshape(b, gh * gw, d)], axis=1)
        x = self.norm(self.encoder(x, rope=rope_tables(gh, gw, d // self.cfg.num_heads, self.cfg.rope_theta)))
        return x[:, 0], x[:, 1 + self.cfg.registers:].reshape(b, gh, gw, d)
