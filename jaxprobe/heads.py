"""The study's downstream heads, trained on frozen embeddings (Supplementary 1.1-1.3 of Li et al., 2025).

* ``LinearSegProbe``: 1x1 conv on the patch grid to one logit, bilinear upsampling to the input size (the
  paper's description). The authors' public code differs: a 2-class 1x1 conv, upsampled with
  ``align_corners=True`` and trained with class-weighted cross-entropy; ``classes=2, align_corners=True`` build
  that one (its output is the margin l1 - l0, the logit of the softmax's foreground probability).
* ``CrossAttentionSegmenter``: the custom segmenter (see DESIGN.md, "The heads").
* ``LinearProbe``: one dense layer on the global embedding (classification logit or CTR value).

Every head is called as ``head(*features, sample_mask=None)`` where ``features`` follow the names in the
head's ``inputs`` attribute ("patches" [B,G,G,C], "global" [B,D]); ``sample_mask`` [B] marks real samples in
a padded batch so that BatchNorm statistics ignore the padding. Segmenters return logits [B,S,S], the linear
probe returns [B].

Bilinear resizing follows PyTorch's ``F.interpolate(mode="bilinear")`` exactly, with ``align_corners`` False (the
default) or True, and is done as two small matrix products, which is exact and fast on every backend.
Initialisation follows PyTorch's defaults for Linear, Conv2d and MultiheadAttention layers.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxprobe.encoders.spec import EncoderSpec

# PyTorch's default init for Linear/Conv: kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)).
_torch_kernel_init = jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _torch_bias_init(fan_in: int):
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _dense(in_features: int, out_features: int, rngs: nnx.Rngs, **kw) -> nnx.Linear:
    return nnx.Linear(
        in_features, out_features, kernel_init=_torch_kernel_init, bias_init=_torch_bias_init(in_features),
        rngs=rngs, **kw)


def bilinear_matrix(in_size: int, out_size: int, align_corners: bool = False) -> np.ndarray:
    """[out_size, in_size] matrix of PyTorch's bilinear interpolation (no antialias)."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"bilinear_matrix: sizes must be positive, got in_size={in_size}, out_size={out_size}")
    if align_corners:  # the corner pixels' centres map onto each other
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        src = np.arange(out_size, dtype=np.float64) * scale
    else:
        src = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
        src = np.maximum(src, 0.0)  # PyTorch clamps negative source coordinates to the first pixel
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = src - lo
    m = np.zeros((out_size, in_size), np.float64)
    np.add.at(m, (np.arange(out_size), lo), 1.0 - frac)
    np.add.at(m, (np.arange(out_size), hi), frac)
    return m.astype(np.float32)


def resize_bilinear(x: jax.Array, out_size: int, align_corners: bool = False) -> jax.Array:
    """Resize [B,H,H,C] to [B,out,out,C], or [B,H,H] to [B,out,out], as PyTorch's bilinear interpolation does."""
    if x.ndim not in (3, 4) or x.shape[1] != x.shape[2]:
        raise ValueError(f"resize_bilinear: expected a square map [B,H,H,C] or [B,H,H], got shape {x.shape}")
    m = jnp.asarray(bilinear_matrix(x.shape[1], out_size, align_corners))
    if x.ndim == 3:  # single-channel maps without a trailing unit axis keep the products lane-friendly
        return jnp.einsum("ip,bpq,jq->bij", m, x, m)
    return jnp.einsum("ip,bpqc,jq->bijc", m, x, m)


def _shifted_resize_matrices(in_size: int, out_size: int) -> np.ndarray:
    """[3, out, in]: row i of entry d interpolates resized row i+d-1 (zero outside), i.e. the rows a 3x3
    'same' convolution reads from the resized map."""
    m = bilinear_matrix(in_size, out_size)
    padded = np.concatenate([np.zeros((1, in_size), m.dtype), m, np.zeros((1, in_size), m.dtype)])
    return np.stack([padded[d:d + out_size] for d in range(3)])


class Conv3x3(nnx.Module):
    """3x3 'same' convolution (zero padding), optionally of the input's bilinear resize to ``resize_to``.

    Computed as one matrix product to the nine taps at the input's resolution followed by two small products
    with shifted interpolation matrices (rows a 3x3 window reads; the identity's when not resizing): the resize
    and the channel mixing are both linear and act on different axes, so they commute. The same function as
    ``conv3x3(resize_bilinear(x, resize_to))``, but the big product runs on the G x G patch grid rather than
    the larger resized map, and on CPU every step maps to dense matrix products, which XLA runs several times
    faster than its generic convolution for the segmenter's shapes (benchmarks/heads.py).
    """

    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
        fan_in = 9 * in_features
        self.kernel = nnx.Param(_torch_kernel_init(rngs.params(), (3, 3, in_features, out_features)))
        self.bias = nnx.Param(_torch_bias_init(fan_in)(rngs.params(), (out_features,)))

    def __call__(self, x: jax.Array, resize_to: int | None = None) -> jax.Array:
        if x.ndim != 4 or x.shape[1] != x.shape[2]:
            raise ValueError(f"Conv3x3: expected a square map [B,H,H,C], got shape {x.shape}")
        size, channels = x.shape[1], x.shape[3]
        # Relative to the tap product, the two shift products cost about size/C + size/(3C); with few channels
        # and nothing to resize, XLA's own convolution is cheaper (only the CPU demo's shrunken widths get here).
        if resize_to in (None, size) and size / channels + size / (3 * channels) > 0.5:
            return jax.lax.conv_general_dilated(x, self.kernel[...], (1, 1), "SAME",
                                                dimension_numbers=("NHWC", "HWIO", "NHWC")) + self.bias[...]
        rows = jnp.asarray(_shifted_resize_matrices(size, resize_to or size))
        taps = jnp.einsum("bpqc,yxco->bpqyxo", x, self.kernel[...])
        taps = jnp.einsum("xjq,bpqyxo->bpyjo", rows, taps)
        return jnp.einsum("yip,bpyjo->bijo", rows, taps) + self.bias[...]


class MapLayerNorm(nnx.Module):
    """LayerNorm over a whole [G,G,C] map (PyTorch ``nn.LayerNorm([C,G,G])``), affine per position and channel."""

    def __init__(self, grid: int, features: int, *, epsilon: float = 1e-5):
        self.epsilon = epsilon
        self.scale = nnx.Param(jnp.ones((grid, grid, features), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((grid, grid, features), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=(1, 2, 3), keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * self.scale[...] + self.bias[...]


class SingleQueryAttention(nnx.Module):
    """PyTorch ``nn.MultiheadAttention`` for one query per sample: q/k/v in-projections, per-head scaled
    dot-product attention over the keys, out-projection. Init as PyTorch: xavier-uniform in-projections,
    zero in-projection and out-projection biases."""

    def __init__(self, dim: int, num_heads: int, *, rngs: nnx.Rngs):
        if dim % num_heads:
            raise ValueError(f"SingleQueryAttention: dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        # torch draws xavier over the fused [3*dim, dim] in_proj_weight, so its bound is sqrt(6 / (4*dim))
        xavier = jax.nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")
        fused = xavier(rngs.params(), (3 * dim, dim))
        zeros = jax.nn.initializers.zeros
        self.q = nnx.Linear(dim, dim, bias_init=zeros, rngs=rngs)
        self.k = nnx.Linear(dim, dim, bias_init=zeros, rngs=rngs)
        self.v = nnx.Linear(dim, dim, bias_init=zeros, rngs=rngs)
        for i, proj in enumerate((self.q, self.k, self.v)):
            proj.kernel[...] = fused[i * dim:(i + 1) * dim].T
        self.out = nnx.Linear(dim, dim, kernel_init=_torch_kernel_init, bias_init=zeros, rngs=rngs)

    def __call__(self, query: jax.Array, keys: jax.Array, values: jax.Array) -> jax.Array:
        """query [B,E], keys/values [B,L,E] -> [B,E]."""
        b, length, dim = keys.shape
        head_dim = dim // self.num_heads
        q = self.q(query).reshape(b, self.num_heads, head_dim)
        k = self.k(keys).reshape(b, length, self.num_heads, head_dim)
        v = self.v(values).reshape(b, length, self.num_heads, head_dim)
        scores = jnp.einsum("bhd,blhd->bhl", q, k) / math.sqrt(head_dim)
        weights = jax.nn.softmax(scores, axis=-1)
        context = jnp.einsum("bhl,blhd->bhd", weights, v).reshape(b, dim)
        return self.out(context)


def _check(name: str, x: jax.Array, expected: Sequence[int | None], what: str) -> None:
    if x.ndim != len(expected) or any(e is not None and s != e for s, e in zip(x.shape, expected)):
        shown = ",".join("B" if e is None else str(e) for e in expected)
        raise ValueError(f"{name}: {what} must have shape [{shown}], got {tuple(x.shape)}")


class LinearSegProbe(nnx.Module):
    """1x1 conv on the patch grid, bilinear upsampling to the input size; one logit per pixel.

    ``classes=1`` (the paper): the conv gives the logit. ``classes=2`` (the authors' code): the conv gives two
    class logits and the output is their margin l1 - l0, whose sigmoid is the softmax's foreground probability
    (the resize is linear, so resizing the margin equals the margin of the resized logits).
    """

    inputs = ("patches",)
    output = "mask"

    def __init__(self, patch_dim: int, grid: int, input_size: int, *, classes: int = 1, align_corners: bool = False,
                 rngs: nnx.Rngs):
        if classes not in (1, 2):
            raise ValueError(f"LinearSegProbe: classes must be 1 (one logit) or 2 (softmax pair), got {classes}")
        self.patch_dim, self.grid, self.input_size = patch_dim, grid, input_size
        self.classes, self.align_corners = classes, bool(align_corners)
        self.conv = _dense(patch_dim, classes, rngs)

    def __call__(self, patches: jax.Array, *, sample_mask: jax.Array | None = None) -> jax.Array:
        del sample_mask  # no batch statistics
        _check("LinearSegProbe", patches, (None, self.grid, self.grid, self.patch_dim), "patches")
        logits = self.conv(patches.astype(jnp.float32))
        logit = logits[..., 0] if self.classes == 1 else logits[..., 1] - logits[..., 0]
        # upsampling after the 1x1 conv equals the other order (bilinear weights sum to one) and is C times cheaper
        return resize_bilinear(logit, self.input_size, self.align_corners)


class CrossAttentionSegmenter(nnx.Module):
    """The study's custom segmenter.

    patches -> LayerNorm over the whole map -> bilinear resize to ``refine_size`` -> conv3x3(widths[0]) + BN +
    ReLU -> conv3x3(widths[1]) + BN + ReLU -> refined map. A 1x1 conv makes keys and values (2 x ``attention_dim``)
    from the refined map; the global embedding -> LayerNorm -> linear(``attention_dim``) is the single query of
    an ``num_heads``-head attention whose output is added to every position of the refined map; bilinear resize to
    the input size and a 1x1 conv give one logit per pixel. BatchNorm uses batch statistics in training mode
    (``head.train()``) and running averages in evaluation mode (``head.eval()``).

    The defaults are the paper's sizes; the CPU demo shrinks them.
    """

    inputs = ("patches", "global")
    output = "mask"

    def __init__(self, patch_dim: int, global_dim: int, grid: int, input_size: int, *,
                 widths: Sequence[int] = (512, 256), refine_size: int = 64, num_heads: int = 8,
                 attention_dim: int = 256, bn_momentum: float = 0.1, norm_epsilon: float = 1e-5,
                 rngs: nnx.Rngs):
        widths = tuple(int(w) for w in widths)
        if len(widths) != 2:
            raise ValueError(f"CrossAttentionSegmenter: widths must hold two conv widths, got {widths}")
        if attention_dim != widths[-1]:
            raise ValueError(
                f"CrossAttentionSegmenter: attention_dim={attention_dim} must equal the refined map's width "
                f"widths[-1]={widths[-1]} because the attention output is added to every position of that map")
        self.patch_dim, self.global_dim, self.grid, self.input_size = patch_dim, global_dim, grid, input_size
        self.refine_size = refine_size
        self.map_norm = MapLayerNorm(grid, patch_dim, epsilon=norm_epsilon)
        self.conv1 = Conv3x3(patch_dim, widths[0], rngs=rngs)
        # PyTorch momentum m weighs the new batch by m; Flax's momentum weighs the old average
        bn = dict(momentum=1.0 - bn_momentum, epsilon=norm_epsilon, use_fast_variance=False, rngs=rngs)
        self.bn1 = nnx.BatchNorm(widths[0], **bn)
        self.conv2 = Conv3x3(widths[0], widths[1], rngs=rngs)
        self.bn2 = nnx.BatchNorm(widths[1], **bn)
        self.key_value = _dense(widths[1], 2 * attention_dim, rngs)
        self.query_norm = nnx.LayerNorm(global_dim, epsilon=norm_epsilon, use_fast_variance=False, rngs=rngs)
        self.query = _dense(global_dim, attention_dim, rngs)
        self.attention = SingleQueryAttention(attention_dim, num_heads, rngs=rngs)
        self.classifier = _dense(widths[1], 1, rngs)

    def __call__(self, patches: jax.Array, global_embedding: jax.Array, *,
                 sample_mask: jax.Array | None = None) -> jax.Array:
        _check("CrossAttentionSegmenter", patches, (None, self.grid, self.grid, self.patch_dim), "patches")
        _check("CrossAttentionSegmenter", global_embedding, (patches.shape[0], self.global_dim), "global embedding")
        bn_mask = None if sample_mask is None else sample_mask.astype(bool)[:, None, None, None]
        x = self.map_norm(patches.astype(jnp.float32))
        x = jax.nn.relu(self.bn1(self.conv1(x, resize_to=self.refine_size), mask=bn_mask))
        refined = jax.nn.relu(self.bn2(self.conv2(x), mask=bn_mask))
        b = refined.shape[0]
        keys, values = jnp.split(self.key_value(refined).reshape(b, -1, self.key_value.out_features), 2, axis=-1)
        query = self.query(self.query_norm(global_embedding.astype(jnp.float32)))
        context = self.attention(query, keys, values)
        fused = refined + context[:, None, None, :]
        # 1x1 conv before the final upsampling: the same function (bilinear weights sum to one) at a fraction of
        # the cost, since the map is refine_size^2 instead of input_size^2 positions wide
        return resize_bilinear(self.classifier(fused)[..., 0], self.input_size)


class LinearProbe(nnx.Module):
    """One dense layer on the global embedding: a classification logit or a regression value per sample."""

    inputs = ("global",)
    output = "scalar"

    def __init__(self, global_dim: int, *, rngs: nnx.Rngs):
        self.global_dim = global_dim
        self.dense = _dense(global_dim, 1, rngs)

    def __call__(self, global_embedding: jax.Array, *, sample_mask: jax.Array | None = None) -> jax.Array:
        del sample_mask
        _check("LinearProbe", global_embedding, (None, self.global_dim), "global embedding")
        return self.dense(global_embedding.astype(jnp.float32))[:, 0]


HEADS = ("linear_seg", "custom_seg", "linear")
# How the study names each head in its tables (results.json "scenario", the report's "Head" column).
SCENARIOS = {"linear_seg": "linear probe", "custom_seg": "custom model", "linear": "linear probe"}


# What each head needs in the embedding store: the global embeddings always (small; trivial baselines and the
# report read them), the patch tokens only for the heads that read them.
FEATURES = {name: ("global", "patches") if "patches" in cls.inputs else ("global",)
            for name, cls in (("linear_seg", LinearSegProbe), ("custom_seg", CrossAttentionSegmenter),
                              ("linear", LinearProbe))}


def make_head(name: str, spec: EncoderSpec, *, rngs: nnx.Rngs, **options) -> nnx.Module:
    """Build head ``name`` ("linear_seg" | "custom_seg" | "linear") with its sizes taken from the encoder spec;
    ``options`` are the custom segmenter's internal widths (widths, refine_size, num_heads, attention_dim) or
    the linear segmentation probe's ``classes`` and ``align_corners``."""
    if name == "linear" and options:
        raise ValueError(f"make_head: head {name!r} takes no options, got {sorted(options)}")
    if name == "linear_seg":
        return LinearSegProbe(spec.patch_dim, spec.grid, spec.input_size, rngs=rngs, **options)
    if name == "custom_seg":
        return CrossAttentionSegmenter(spec.patch_dim, spec.global_dim, spec.grid, spec.input_size, rngs=rngs,
                                       **options)
    if name == "linear":
        return LinearProbe(spec.global_dim, rngs=rngs)
    raise ValueError(f"make_head: unknown head {name!r}; expected one of {HEADS}")
