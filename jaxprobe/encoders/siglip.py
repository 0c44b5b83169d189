"""SigLIP vision tower (CheXagent's XraySigLIP): no CLS, learned positions, tanh GELU, attention-pooling head.

Matches transformers' ``SiglipVisionModel``: patches = ``last_hidden_state`` (after ``post_layernorm``),
global = ``pooler_output`` from the MAP head — a learned probe token attends over the patch tokens
(torch ``nn.MultiheadAttention``), then ``h + mlp(layernorm(h))``. At a non-native size the whole position
table is resampled with torch bicubic (what ``interpolate_pos_encoding=True`` does).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from .posembed import resample_grid
from .config import ViTConfig
from .transformer import Attention, Mlp, PatchEmbed, Transformer, layer_norm, trunc_normal


class MAPHead(nnx.Module):
    def __init__(self, cfg: ViTConfig, dtype, rngs: nnx.Rngs):
        self.probe = nnx.Param(trunc_normal(rngs, (1, 1, cfg.width)))
        self.attn = Attention(cfg.width, cfg.num_heads, True, dtype, rngs)
        self.norm = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs)
        self.mlp = Mlp(cfg.width, cfg.mlp_dim, cfg.activation, dtype, rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        b, _, d = tokens.shape
        probe = jnp.broadcast_to(self.probe[...].astype(tokens.dtype), (b, 1, d))
        h = self.attn(probe, tokens)
        h = h + self.mlp(self.norm(h))
        return h[:, 0]


class SiglipEncoder(nnx.Module):
    def __init__(self, cfg: ViTConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        if cfg.pool != "map" or cfg.class_token:
            raise ValueError("SigLIP vision towers have no class token and pool with the MAP head")
        self.cfg = cfg
        g = cfg.grid
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.width, dtype, rngs)
        self.pos_embed = nnx.Param(trunc_normal(rngs, (1, g * g, cfg.width)))
        self.encoder = Transformer(cfg, dtype, rngs)
        self.norm = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs)
        self.head = MAPHead(cfg, dtype, rngs)

    def positions(self, gh: int, gw: int) -> jax.Array:
        g = self.cfg.grid
        grid = resample_grid(self.pos_embed[0].reshape(g, g, -1), (gh, gw), self.cfg.pos_interp)
        return grid.reshape(1, gh * gw, -1)

    def __call__(self, pixels: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = self.patch_embed(pixels)
        b, gh, gw, d = x.shape
        x = x.reshape(b, gh * gw, d) + self.positions(gh, gw).astype(x.dtype)
        x = self.norm(self.encoder(x))
        return self.head(x), x.reshape(b, gh, gw, d)
