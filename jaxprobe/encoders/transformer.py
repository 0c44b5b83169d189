"""The pieces the encoder families share: patch embedding, attention (optionally with 2-D rotary positions), MLP,
block, and the class-token design.

Parameter layout follows Flax conventions (Linear kernels ``[in, out]``, patch kernel ``[p, p, 3, D]``);
``conversion/`` maps the PyTorch tensors onto it. q, k and v are separate projections in every family — the
converters split fused ``qkv`` / ``in_proj`` weights — so one attention module serves all of them. A projection a
reference has no bias for (CLIP's patch embedding, DINOv3's key) gets a zero bias from its converter: exactly the
same numbers, one module.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from . import cpu_kernels
from .config import ViTConfig

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def layer_norm(dim: int, eps: float, dtype, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # The fast E[x^2]-E[x]^2 variance loses precision on DINOv2's high-norm tokens; use the two-pass form.
    return nnx.LayerNorm(dim, epsilon=eps, use_fast_variance=False, dtype=dtype, rngs=rngs)


class Linear(nnx.Linear):
    """``nnx.Linear`` (same parameters) with an optional activation applied to its output; the float32 CPU forward
    runs on the native dense kernel (``cpu_kernels``), which applies bias and activation to each slice it computes."""

    def __call__(self, x: jax.Array, activation: str | None = None) -> jax.Array:
        if cpu_kernels.enabled(self.dtype or x.dtype) and x.dtype == jnp.float32:
            return cpu_kernels.dense(x, self.kernel[...], self.bias_or_zeros(), activation)
        y = super().__call__(x)
        return y if activation is None else activate(y, activation)

    def bias_or_zeros(self) -> jax.Array:
        """The bias, or zeros for a layer without one (the native kernel always adds one)."""
        return self.bias[...] if self.bias is not None else jnp.zeros((self.out_features,), jnp.float32)


def linear(d_in: int, d_out: int, dtype, rngs: nnx.Rngs, use_bias: bool = True) -> Linear:
    return Linear(d_in, d_out, use_bias=use_bias, dtype=dtype, rngs=rngs)


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
        if cpu_kernels.enabled(self.dtype):
            return cpu_kernels.dense(x, k, self.bias[...])
        return x @ k + self.bias[...].astype(self.dtype)


def attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Softmax attention of ``[B, T, H, d]`` queries, keys and values, scale 1/sqrt(d) (all three references).

    Accelerators get ``jax.nn.dot_product_attention`` (fused kernels); the float32 CPU forward the native kernel
    (``cpu_kernels``: blocks of queries, scores in cache, MKL's GEMMs). Without it, XLA:CPU materialises the whole
    ``[B, H, Tq, Tk]`` score tensor and the softmax over it is memory-bound (RAD-DINO at 518 px: 90M scores per
    4 images, three passes); one (image, head) pair at a time keeps the scores in cache, 3.8x faster there
    (benchmarks/encoders.py measures the encoder as a whole against PyTorch).
    """
    b, tq, h, d = q.shape
    if cpu_kernels.enabled(q.dtype):
        return cpu_kernels.attention(q, k, v)
    if jax.default_backend() != "cpu" or tq * k.shape[1] < 65536:
        return jax.nn.dot_product_attention(q, k, v)
    heads = lambda a: jnp.transpose(a, (0, 2, 1, 3)).reshape(b * h, a.shape[1], d)  # noqa: E731

    def one(qkv):
        qh, kh, vh = qkv
        return jax.nn.softmax((qh * d ** -0.5) @ kh.T, axis=-1) @ vh

    out = jax.lax.map(one, (heads(q), heads(k), heads(v)))
    return jnp.transpose(out.reshape(b, h, tq, d), (0, 2, 1, 3))


def rope_tables(gh: int, gw: int, head_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin ``[gh*gw, head_dim]`` of DINOv3's 2-D rotary positions (transformers' ``DINOv3ViTModel``).

    Patch centres on [-1, 1] (y, x); per axis ``head_dim / 4`` frequencies ``theta ** -(4i / head_dim)``; angles
    ``2 pi coord freq`` laid out as [y freqs, x freqs] and repeated twice. Computed in float32 with numpy from the
    static grid (a constant of the compiled function), in the reference's order of operations.
    """
    f32 = np.float32
    ys = np.arange(0.5, gh, dtype=f32) / f32(gh)
    xs = np.arange(0.5, gw, dtype=f32) / f32(gw)
    coords = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    coords = f32(2.0) * coords - f32(1.0)
    inv_freq = f32(1.0) / (f32(theta) ** np.arange(0, 1, 4 / head_dim, dtype=f32))
    angles = (f32(2 * np.pi) * coords[:, :, None] * inv_freq[None, None, :]).reshape(gh * gw, -1)
    angles = np.concatenate([angles, angles], axis=-1)
    return np.cos(angles).astype(f32), np.sin(angles).astype(f32)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate the last ``len(cos)`` tokens of ``x [B, T, H, d]`` (the patches; CLS and registers stay as they are)."""
    n, half = cos.shape[0], x.shape[-1] // 2
    prefix, patches = x[:, : x.shape[1] - n], x[:, x.shape[1] - n:]
    rotated = jnp.concatenate([-patches[..., half:], patches[..., :half]], axis=-1)
    patches = patches * cos[None, :, None, :] + rotated * sin[None, :, None, :]
    return jnp.concatenate([prefix, patches], axis=1)


class Attention(nnx.Module):
    """Multi-head attention with separate q/k/v/out projections (see ``attention`` for the kernel); ``rope``
    (cos, sin) rotates the patch queries and keys (DINOv3)."""

    def __init__(self, width: int, num_heads: int, qkv_bias: bool, dtype, rngs: nnx.Rngs):
        self.num_heads = num_heads
        self.q = linear(width, width, dtype, rngs, qkv_bias)
        self.k = linear(width, width, dtype, rngs, qkv_bias)
        self.v = linear(width, width, dtype, rngs, qkv_bias)
        self.o = linear(width, width, dtype, rngs)

    def __call__(self, x: jax.Array, context: jax.Array | None = None, rope=None) -> jax.Array:
        context = x if context is None else context
        b, tq, d = x.shape
        tk = context.shape[1]
        h = self.num_heads
        if context is x and rope is None and cpu_kernels.enabled(x.dtype):
            return self.o(self._packed(x).reshape(b, tq, d))
        q = self.q(x).reshape(b, tq, h, d // h)
        k = self.k(context).reshape(b, tk, h, d // h)
        v = self.v(context).reshape(b, tk, h, d // h)
        if rope is not None:
            cos, sin = (jnp.asarray(t, q.dtype) for t in rope)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        out = attention(q, k, v)
        return self.o(out.reshape(b, tq, d))

    def _packed(self, x: jax.Array) -> jax.Array:
        """The native CPU path of self-attention: q, k and v as one GEMM (the three kernels side by side), read in
        place by the attention kernel."""
        layers = (self.q, self.k, self.v)
        kernel = jnp.concatenate([p.kernel[...] for p in layers], axis=1)
        bias = jnp.concatenate([p.bias_or_zeros() for p in layers])
        b, t, d = x.shape
        qkv = cpu_kernels.dense(x, kernel, bias).reshape(b, t, 3, self.num_heads, d // self.num_heads)
        return cpu_kernels.packed_attention(qkv)


def activate(x: jax.Array, activation: str) -> jax.Array:
    """``ViTConfig.activation``: exact erf GELU (DINOv2, DINOv3, timm), tanh GELU (SigLIP), QuickGELU (OpenAI CLIP)."""
    if activation == "quick_gelu":
        return x * jax.nn.sigmoid(1.702 * x)
    # jax.nn.gelu defaults to the tanh form; most references need the exact erf form.
    return jax.nn.gelu(x, approximate=activation == "gelu_tanh")


class Mlp(nnx.Module):
    def __init__(self, width: int, hidden: int, activation: str, dtype, rngs: nnx.Rngs):
        self.activation = activation
        self.fc1 = linear(width, hidden, dtype, rngs)
        self.fc2 = linear(hidden, width, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc2(self.fc1(x, self.activation))


class Block(nnx.Module):
    """Pre-norm transformer block: x + ls1*attn(norm1(x)), then + ls2*mlp(norm2(x))."""

    def __init__(self, cfg: ViTConfig, dtype, rngs: nnx.Rngs):
        self.norm1 = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs)
        self.attn = Attention(cfg.width, cfg.num_heads, cfg.qkv_bias, dtype, rngs)
        self.norm2 = layer_norm(cfg.width, cfg.layer_norm_eps, dtype, rngs)
        self.mlp = Mlp(cfg.width, cfg.mlp_dim, cfg.activation, dtype, rngs)
        if cfg.layerscale:
            self.ls1 = nnx.Param(jnp.ones((cfg.width,)))
            self.ls2 = nnx.Param(jnp.ones((cfg.width,)))
        else:
            self.ls1 = self.ls2 = None

    def __call__(self, x: jax.Array, rope=None) -> jax.Array:
        y = self.attn(self.norm1(x), rope=rope)
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

    def __call__(self, x: jax.Array, rope=None) -> jax.Array:
        for block in self.blocks:
            x = block(x, rope)
        return x


class ClassTokenEncoder(nnx.Module):
    """The CLS-token design shared by DINOv2, timm ViT and CLIP: CLS first, then a position table with a CLS slot.

    At a non-native size only the patch part of the table is resampled (``cfg.pos_interp``); the CLS slot stays.
    Subclasses create ``patch_embed``, ``cls_token``, ``pos_embed``, ``encoder``, ``norm``, and ``registers``
    (register tokens after the CLS, added after the positions, as DINOv2 with registers) and ``pre_norm`` (CLIP),
    each None where the family has none.
    """

    def positions(self, gh: int, gw: int) -> jax.Array:
        from .posembed import resample_grid

        pos = self.pos_embed[...]
        g = self.cfg.grid
        patch = resample_grid(pos[0, 1:].reshape(g, g, -1), (gh, gw), self.cfg.pos_interp)
        return jnp.concatenate([pos[:, :1], patch.reshape(1, gh * gw, -1)], axis=1)

    def tokens(self, pixels: jax.Array) -> tuple[jax.Array, int, int]:
        """The last block's tokens ``[B, 1 + R + gh*gw, D]`` (CLS, R registers, patches; no final norm) and the grid."""
        x = self.patch_embed(pixels)
        b, gh, gw, d = x.shape
        cls = jnp.broadcast_to(self.cls_token[...].astype(x.dtype), (b, 1, d))
        x = jnp.concatenate([cls, x.reshape(b, gh * gw, d)], axis=1)
        x = x + self.positions(gh, gw).astype(x.dtype)
        if self.registers is not None:
            registers = jnp.broadcast_to(self.registers[...].astype(x.dtype), (b, self.cfg.registers, d))
            x = jnp.concatenate([x[:, :1], registers, x[:, 1:]], axis=1)
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        return self.encoder(x), gh, gw


def trunc_normal(rngs: nnx.Rngs, shape, std: float = 0.02) -> jax.Array:
    return std * jax.random.truncated_normal(rngs.params(), -2.0, 2.0, shape)
