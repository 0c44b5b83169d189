"""DINOv2 (RAD-DINO), with or without registers: CLS token + patch tokens, learned positions with a CLS slot,
LayerScale, exact GELU.

Matches transformers' ``Dinov2Model`` and ``Dinov2WithRegistersModel``: global = ``pooler_output`` =
``last_hidden_state[:, 0]`` and patches = the tokens after the CLS and the registers, both after the final
LayerNorm. Register tokens are inserted after the positions are added (they have none). At a non-native input
size the patch part of the position table is resampled in float32 (torch bicubic without antialiasing for plain
DINOv2, with antialiasing for the registers model: ``cfg.pos_interp``); the CLS slot is kept as it is.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from .config import ViTConfig
from .transformer import ClassTokenEncoder, PatchEmbed, Transformer, layer_norm, trunc_normal


class Dinov2Encoder(ClassTokenEncoder):
    def __init__(self, cfg: ViTConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg = cfg
        g = cfg.grid
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.width, dtype, rngs)
        self.cls_token = nnx.Param(trunc_normal(rngs, (1, 1, cfg.width)))
        # Unused at inference (no masked positions); kept so converted checkpoints round-trip whole.
        self.mask_token = nnx.Param(jnp.zeros((1, cfg.width)))
        self.registers = nnx.Param(trunc_normal(rngs, (1, cfg.registers, cfg.width))) if cfg.registers else None
        self.pos_embed = nnx.Param(trunc_normal(rngs, (1, 1 + g * g, cfg.width)))
        self.pre_norm = None
        self.encoder = Transformer(cfg, dtype, rngs)
        self.norm = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs)

    def __call__(self, pixels: jax.Array) -> tuple[jax.Array, jax.Array]:
        x, gh, gw = self.tokens(pixels)
        x = self.norm(x)
        return x[:, 0], x[:, 1 + self.cfg.registers:].reshape(x.shape[0], gh, gw, -1)
