"""The pieces the three encoder families share: patch embedding, attention, MLP, block.

Parameter layout follows Flax conventions (Linear kernels ``[in, out]``, patch kernel ``[p, p, 3, D]``);
``conversion/`` maps the PyTorch tensors onto it. q, k and v are separate projections in every family — the
converters split fused ``qkv`` / ``in_proj`` weights — so one attention module serves all three.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from .config import ViTConfig

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def layer_norm(dim: int, eps: float, dtype, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # The fast E[x^2]-E[x]^2 variance loses precision on DINOv2's high-norm tokens; use the two-pass form.
    return nnx.LayerNorm(dim, epsilon=eps, use_fast_variance=False, dtype=dtype, rngs=rngs)


def linear(d_in: int, d_out: int, dtype, rngs: nnx.Rngs, use_bias: bool = True) -> nnx.Linear:
    return nnx.Linear(d_in, d_out, use_bias=use_bias, dtype=dtype, rngs=rngs)


class PatchEmbed(nnx.Module):
    """Non-overlapping p x p patches -> width, as one matmul (equal to torch's stride-p Conv2d)."""

    def __init__(self, patch_size: int, width: int, dtype, rngs: nnx.Rngs, channels: int = 3):
        self.patch_size = patch_size
        self.dtype = dtype
        self.kernel = nnx.Param(
            jax.nn.initializers.lecun_normal()(rngs.params(), (patch_size, patch_size, channels, width))
        )
        self.bias = nnx.Param(jnp.zeros((width,)))

    def __call__(self, pixels: jax.Array) -> jax.Array:
        b, h, w, c = pixels.shape
        p = self.patch_size
        gh, gw = h // p, w // p  # like torch's conv, a remainder that does not fill a patch is dropped
        x = pixels[:, : gh * p, : gw * p, :].reshape(b, gh, p, gw, p, c).transpose(0, 1, 3, 2, 4, 5)
        x = x.reshape(b, gh, gw, p * p * c).astype(self.dtype)
        k = self.kernel[...].reshape(p * p * c, -1).astype(self.dtype)
        return x @ k + self.bias[...].astype(self.dtype)


def attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Softmax attention of ``[B, T, H, d]`` queries, keys and values, scale 1/sqrt(d) (all three references).

    Accelerators get ``jax.nn.dot_product_attention`` (fused kernels). XLA:CPU materialises the whole
    ``[B, H, Tq, Tk]`` score tensor and the softmax over it is memory-bound (RAD-DINO at 518 px: 90M scores per
    4 images, three passes); one (image, head) pair at a time keeps the scores in cache, 3.8x faster there
    (benchmarks/encoders.py measures the encoder as a whole against PyTorch).
    """
    b, tq, h, d = q.shape
    if jax.default_backend() != "cpu" or tq * k.shape[1] < 65536:
        return jax.nn.dot_product_attention(q, k, v)
    heads = lambda a: jnp.transpose(a, (0, 2, 1, 3)).reshape(b * h, a.shape[1], d)  # noqa: E731

    def one(qkv):
        qh, kh, vh = qkv
        return jax.nn.softmax((qh * d ** -0.5) @ kh.T, axis=-1) @ vh

    out = jax.lax.map(one, (heads(q), heads(k), heads(v)))
    return jnp.transpose(out.reshape(b, h, tq, d), (0, 2, 1, 3))


class Attention(nnx.Module):
    """Multi-head attention with separate q/k/v/out projections (see ``attention`` for the kernel)."""

    def __init__(self, width: int, num_heads: int, qkv_bias: bool, dtype, rngs: nnx.Rngs):
        self.num_heads = num_heads
        self.q = linear(width, width, dtype, rngs, qkv_bias)
        self.k = linear(width, width, dtype, rngs, qkv_bias)
        self.v = linear(width, width, dtype, rngs, qkv_bias)
        self.o = linear(width, width, dtype, rngs)

    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        context = x if context is None else context
        b, tq, d = x.shape
        tk = context.shape[1]
        h = self.num_heads
        q = self.q(x).reshape(b, tq, h, d // h)
        k = self.k(context).reshape(b, tk, h, d // h)
        v = self.v(context).reshape(b, tk, h, d // h)
        out = attention(q, k, v)
        return self.o(out.reshape(b, tq, d))


class Mlp(nnx.Module):
    def __init__(self, width: int, hidden: int, gelu_approximate: bool, dtype, rngs: nnx.Rngs):
        self.gelu_approximate = gelu_approximate
        self.fc1 = linear(width, hidden, dtype, rngs)
        self.fc2 = linear(hidden, width, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        # jax.nn.gelu defaults to the tanh form; DINOv2 and timm need the exact erf form.
        return self.fc2(jax.nn.gelu(self.fc1(x), approximate=self.gelu_approximate))


class Block(nnx.Module):
    """Pre-norm transformer block: x + ls1*attn(norm1(x)), then + ls2*mlp(norm2(x))."""

    def __init__(self, cfg: ViTConfig, dtype, rngs: nnx.Rngs):
        self.norm1 = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs)
        self.attn = Attention(cfg.width, cfg.num_heads, cfg.qkv_bias, dtype, rngs)
        self.norm2 = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs)
        self.mlp = Mlp(cfg.width, cfg.mlp_dim, cfg.gelu_approximate, dtype, rngs)
        if cfg.layerscale:
            self.ls1 = nnx.Param(jnp.ones((cfg.width,)))
            self.ls2 = nnx.Param(jnp.ones((cfg.width,)))
        else:
            self.ls1 = self.ls2 = None

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.attn(self.norm1(x))
        if self.ls1 is not None:
            y = y * self.ls1[...].astype(y.dtype)
        x = x + y
        y = self.mlp(self.norm2(x))
        if self.ls2 is not None:
            y = y * self.ls2[...].astype(y.dtype)
        return x + y


class Transformer(nnx.Module):
    def __init__(self, cfg: ViTConfig, dtype, rngs: nnx.Rngs):
        self.blocks = nnx.List([Block(cfg, dtype, rngs) for _ in range(cfg.depth)])

    def __call__(self, x: jax.Array) -> jax.Array:
        for block in self.blocks:
            x = block(x)
        return x


class ClassTokenEncoder(nnx.Module):
    """The CLS-token design shared by DINOv2 and timm ViT: CLS first, then a position table with a CLS slot.

    At a non-native size only the patch part of the table is resampled (``cfg.pos_interp``); the CLS slot stays.
    Subclasses create ``patch_embed``, ``cls_token``, ``pos_embed``, ``encoder`` and ``norm``.
    """

    def positions(self, gh: int, gw: int) -> jax.Array:
        from .posembed import resample_grid

        pos = self.pos_embed[...]
        g = self.cfg.grid
        patch = resample_grid(pos[0, 1:].reshape(g, g, -1), (gh, gw), self.cfg.pos_interp)
        return jnp.concatenate([pos[:, :1], patch.reshape(1, gh * gw, -1)], axis=1)

    def tokens(self, pixels: jax.Array) -> tuple[jax.Array, int, int]:
        """Final-normed tokens ``[B, 1 + gh*gw, D]`` (CLS first) and the patch grid."""
        x = self.patch_embed(pixels)
        b, gh, gw, d = x.shape
        cls = jnp.broadcast_to(self.cls_token[...].astype(x.dtype), (b, 1, d))
        x = jnp.concatenate([cls, x.reshape(b, gh * gw, d)], axis=1)
        x = x + self.positions(gh, gw).astype(x.dtype)
        return self.norm(self.encoder(x)), gh, gw


def trunc_normal(rngs: nnx.Rngs, shape, std: float = 0.02) -> jax.Array:
    return std * jax.random.truncated_normal(rngs.params(), -2.0, 2.0, shape)
