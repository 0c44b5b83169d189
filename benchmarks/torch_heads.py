"""The study's heads written in PyTorch, as in the authors' code (NCHW, torch layers), and a weight copier.

They are the oracles of the head tests (same weights -> same outputs and gradients) and the competitors of
``benchmarks/heads.py``. Inputs use the embedding store's layout (patches [B,G,G,C], global [B,D]).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class TorchLinearSegProbe(nn.Module):
    def __init__(self, patch_dim: int, grid: int, input_size: int):
        super().__init__()
        self.input_size = input_size
        self.conv = nn.Conv2d(patch_dim, 1, 1)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return _upsample(self.conv(patches.permute(0, 3, 1, 2)), self.input_size)[:, 0]


class TorchCrossAttentionSegmenter(nn.Module):
    """``upsample_first=True`` is the order of the paper's description (resize the refined map to the input
    size, then the 1x1 classifier); ``False`` swaps them, which is the same function at a lower cost."""

    def __init__(self, patch_dim: int, global_dim: int, grid: int, input_size: int, *,
                 widths: Sequence[int] = (512, 256), refine_size: int = 64, num_heads: int = 8,
                 attention_dim: int = 256, upsample_first: bool = True):
        super().__init__()
        self.input_size, self.refine_size, self.upsample_first = input_size, refine_size, upsample_first
        self.map_norm = nn.LayerNorm([patch_dim, grid, grid])
        self.refine = nn.Sequential(
            nn.Conv2d(patch_dim, widths[0], 3, padding=1), nn.BatchNorm2d(widths[0]), nn.ReLU(),
            nn.Conv2d(widths[0], widths[1], 3, padding=1), nn.BatchNorm2d(widths[1]), nn.ReLU())
        self.key_value = nn.Conv2d(widths[1], 2 * attention_dim, 1)
        self.query_norm = nn.LayerNorm(global_dim)
        self.query = nn.Linear(global_dim, attention_dim)
        self.attention = nn.MultiheadAttention(attention_dim, num_heads, batch_first=True)
        self.classifier = nn.Conv2d(widths[1], 1, 1)

    def forward(self, patches: torch.Tensor, global_embedding: torch.Tensor) -> torch.Tensor:
        x = _upsample(self.map_norm(patches.permute(0, 3, 1, 2)), self.refine_size)
        refined = self.refine(x)
        keys, values = self.key_value(refined).flatten(2).transpose(1, 2).chunk(2, dim=-1)
        query = self.query(self.query_norm(global_embedding))[:, None]
        context, _ = self.attention(query, keys, values, need_weights=False)
        fused = refined + context[:, 0, :, None, None]
        if self.upsample_first:
            return self.classifier(_upsample(fused, self.input_size))[:, 0]
        return _upsample(self.classifier(fused), self.input_size)[:, 0]


class TorchLinearProbe(nn.Module):
    def __init__(self, global_dim: int):
        super().__init__()
        self.dense = nn.Linear(global_dim, 1)

    def forward(self, global_embedding: torch.Tensor) -> torch.Tensor:
        return self.dense(global_embedding)[:, 0]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _set(param, value: np.ndarray) -> None:
    """param <- value, shapes equal: a [..., 1] value would otherwise broadcast silently into a wider param."""
    if tuple(param.shape) != tuple(value.shape):
        raise ValueError(f"copy_torch_weights: shape {tuple(value.shape)} does not fit parameter {tuple(param.shape)}")
    param[...] = value


def _dense_from(layer, weight: torch.Tensor, bias: torch.Tensor) -> None:
    """nnx.Linear <- torch Linear weight [out,in] or 1x1 conv weight [out,in,1,1]."""
    _set(layer.kernel, _np(weight.reshape(weight.shape[0], -1)).T)
    _set(layer.bias, _np(bias))


def _conv3x3_from(conv, torch_conv: nn.Conv2d) -> None:
    _set(conv.kernel, _np(torch_conv.weight).transpose(2, 3, 1, 0))
    _set(conv.bias, _np(torch_conv.bias))


def _batchnorm_from(bn, torch_bn: nn.BatchNorm2d) -> None:
    _set(bn.scale, _np(torch_bn.weight))
    _set(bn.bias, _np(torch_bn.bias))
    _set(bn.mean, _np(torch_bn.running_mean))
    _set(bn.var, _np(torch_bn.running_var))


def copy_torch_weights(torch_head: nn.Module, head) -> None:
    """Copy every tensor of a PyTorch twin into the matching jaxprobe head (in place)."""
    if isinstance(torch_head, TorchLinearProbe):
        _dense_from(head.dense, torch_head.dense.weight, torch_head.dense.bias)
    elif isinstance(torch_head, TorchLinearSegProbe):
        _dense_from(head.conv, torch_head.conv.weight, torch_head.conv.bias)
    elif isinstance(torch_head, TorchCrossAttentionSegmenter):
        _set(head.map_norm.scale, _np(torch_head.map_norm.weight).transpose(1, 2, 0))
        _set(head.map_norm.bias, _np(torch_head.map_norm.bias).transpose(1, 2, 0))
        _conv3x3_from(head.conv1, torch_head.refine[0])
        _batchnorm_from(head.bn1, torch_head.refine[1])
        _conv3x3_from(head.conv2, torch_head.refine[3])
        _batchnorm_from(head.bn2, torch_head.refine[4])
        _dense_from(head.key_value, torch_head.key_value.weight, torch_head.key_value.bias)
        _set(head.query_norm.scale, _np(torch_head.query_norm.weight))
        _set(head.query_norm.bias, _np(torch_head.query_norm.bias))
        _dense_from(head.query, torch_head.query.weight, torch_head.query.bias)
        att = torch_head.attention
        for part, proj in zip(att.in_proj_weight.chunk(3), (head.attention.q, head.attention.k, head.attention.v)):
            _set(proj.kernel, _np(part).T)
        for part, proj in zip(att.in_proj_bias.chunk(3), (head.attention.q, head.attention.k, head.attention.v)):
            _set(proj.bias, _np(part))
        _dense_from(head.attention.out, att.out_proj.weight, att.out_proj.bias)
        _dense_from(head.classifier, torch_head.classifier.weight, torch_head.classifier.bias)
    else:
        raise TypeError(f"copy_torch_weights: no mapping for {type(torch_head).__name__}")
