"""CLIP image towers: transformers' ``CLIPVisionModel`` / ``CLIPVisionModelWithProjection`` / ``CLIPModel``
(family "clip") and open_clip's native ``VisionTransformer`` (family "open_clip"); the timm-backed open_clip tower
(BiomedCLIP, family "timm_vit") is the same design without the pre-norm.

CLS first, a position table with a CLS slot, a LayerNorm before the blocks (``pre_layrnorm`` / ``ln_pre``),
QuickGELU (OpenAI weights) or exact GELU, a final LayerNorm and a bias-free projection of the CLS token. Global =
what the model's code calls the image embedding: ``get_image_features`` = ``visual_projection(pooler_output)``
(transformers; ``pooler_output`` when the folder has no projection) and ``encode_image(normalize=False)``
(open_clip). Patches: transformers' ``last_hidden_state[:, 1:]`` — the last block's tokens, which its CLIP does not
normalise (``norm_patches=False``) — and open_clip's ``output_tokens`` (after ``ln_post``). At a non-native size the
patch part of the position table is resampled like the reference: transformers' ``interpolate_pos_encoding``
(bicubic) and open_clip's ``resize_pos_embed`` (bicubic, antialiased).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from .config import ViTConfig
from .transformer import ClassTokenEncoder, PatchEmbed, Transformer, layer_norm, linear, trunc_normal


class ClipEncoder(ClassTokenEncoder):
    cls_init_std = 0.02

    def __init__(self, cfg: ViTConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        if not cfg.class_token or cfg.pool != "cls":
            raise ValueError(f"{cfg.family} towers pool the class token")
        self.cfg = cfg
        g = cfg.grid
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.width, dtype, rngs)
        self.cls_token = nnx.Param(trunc_normal(rngs, (1, 1, cfg.width), std=self.cls_init_std))
        self.pos_embed = nnx.Param(trunc_normal(rngs, (1, 1 + g * g, cfg.width)))
        self.registers = None
        self.pre_norm = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs) if cfg.pre_norm else None
        self.encoder = Transformer(cfg, dtype, rngs)
        self.norm = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs)
        self.proj = linear(cfg.width, cfg.proj_dim, dtype, rngs, use_bias=False) if cfg.proj_dim else None

    def __call__(self, pixels: jax.Array) -> tuple[jax.Array, jax.Array]:
        x, gh, gw = self.tokens(pixels)
        if self.cfg.norm_patches:
            x = self.norm(x)
            pooled = x[:, 0]
        else:
            pooled = self.norm(x[:, 0])
        if self.proj is not None:
            pooled = self.proj(pooled)
        return pooled, x[:, 1:].reshape(x.shape[0], gh, gw, -1)
