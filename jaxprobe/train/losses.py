"""The per-sample training losses of the heads: binary cross-entropy of logits and squared error."""
from __future__ import annotations

import jax
import jax.numpy as jnp

LOSSES = ("bce", "mse")


@jax.custom_vjp
def bce_with_logits(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Elementwise binary cross-entropy of logits, with the gradient written as sigmoid(logit) - target: one
    exponential and one log per pixel forward and none backward (the generic derivative needs several), which
    matters for 518x518 masks."""
    return _bce_forward(logits, targets)[0]


def _bce_forward(logits, targets):
    e = jnp.exp(-jnp.abs(logits))
    loss = jnp.maximum(logits, 0.0) - logits * targets + jnp.log1p(e)
    sigmoid = jnp.where(logits >= 0, 1.0, e) / (1.0 + e)
    return loss, (sigmoid - targets, logits)


def _bce_backward(residual, g):
    residual_logits, logits = residual
    return g * residual_logits, -g * logits


bce_with_logits.defvjp(_bce_forward, _bce_backward)


def weighted_bce_with_logits(logits: jax.Array, targets: jax.Array, negative: float, positive: float) -> jax.Array:
    """Class-weighted binary cross-entropy of logits: positive * y * softplus(-x) + negative * (1 - y) * softplus(x).

    With x = l1 - l0 the margin of a 2-class head this is PyTorch's ``CrossEntropyLoss(weight=[negative, positive])``
    on one-hot (probability) targets, whose mean divides by the number of pixels, not by the summed weights."""
    return positive * targets * jax.nn.softplus(-logits) + negative * (1.0 - targets) * jax.nn.softplus(logits)


def per_sample_loss(kind: str, outputs: jax.Array, targets: jax.Array,
                    class_weights: tuple[float, float] = (1.0, 1.0)) -> jax.Array:
    """Mean loss of each sample (over its pixels for masks): [B]. ``class_weights`` (negative, positive) weigh
    the binary loss; (1, 1) is plain BCE."""
    targets = targets.astype(jnp.float32)
    if kind == "bce" and tuple(class_weights) != (1.0, 1.0):
        losses = weighted_bce_with_logits(outputs, targets, *map(float, class_weights))
    elif kind == "bce":
        losses = bce_with_logits(outputs, targets)
    elif kind == "mse":
        losses = jnp.square(outputs - targets)
    else:
        raise ValueError(f"unknown loss {kind!r}; expected one of {LOSSES}")
    losses = losses.reshape(losses.shape[0], -1)
    # a product with a ones vector: XLA's CPU row reductions over 518*518 pixels run several times slower than
    # a matrix-vector product; HIGHEST keeps GPUs from rounding the sum through TF32
    ones = jnp.ones((losses.shape[1],), losses.dtype)
    return jnp.dot(losses, ones, precision=jax.lax.Precision.HIGHEST) / losses.shape[1]
