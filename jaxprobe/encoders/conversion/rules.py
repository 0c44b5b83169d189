"""A converter is a list of rules: one Flax parameter <- one or more PyTorch tensors through a pure function.

``apply_rules`` runs them over a state dict and refuses to produce a half-converted model: every missing,
unexpected or mis-shaped key is collected and reported in one error that names them.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from jaxprobe.errors import ConversionError

Path = tuple  # a Flax state path, e.g. ("encoder", "blocks", 0, "attn", "q", "kernel")


@dataclasses.dataclass(frozen=True)
class Rule:
    path: Path
    keys: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]  # expected torch shapes of ``keys``
    fn: Callable[..., np.ndarray]


def same(x):
    return x


def transpose(x):  # torch Linear (out, in) -> Flax kernel (in, out)
    return x.T


def conv_kernel(x):  # torch Conv2d (out, in, kh, kw) -> (kh, kw, in, out)
    return x.transpose(2, 3, 1, 0)


def rule(path: Path, key: str, shape: Sequence[int], fn=same) -> Rule:
    return Rule(tuple(path), (key,), (tuple(shape),), fn)


def linear_rules(path: Path, prefix: str, d_in: int, d_out: int, bias: bool = True) -> list[Rule]:
    out = [rule((*path, "kernel"), f"{prefix}.weight", (d_out, d_in), transpose)]
    if bias:
        out.append(rule((*path, "bias"), f"{prefix}.bias", (d_out,)))
    return out


def layernorm_rules(path: Path, prefix: str, dim: int) -> list[Rule]:
    return [rule((*path, "scale"), f"{prefix}.weight", (dim,)), rule((*path, "bias"), f"{prefix}.bias", (dim,))]


def fused_qkv_rules(path: Path, weight_key: str, bias_key: str | None, dim: int) -> list[Rule]:
    """Rows of a fused (3*dim, dim) projection are [q; k; v] (timm qkv, torch MultiheadAttention in_proj)."""
    out = []
    for i, name in enumerate(("q", "k", "v")):
        out.append(Rule((*path, name, "kernel"), (weight_key,), ((3 * dim, dim),),
                        lambda w, i=i: w[i * dim:(i + 1) * dim].T))
        if bias_key is not None:
            out.append(Rule((*path, name, "bias"), (bias_key,), ((3 * dim,),), lambda b, i=i: b[i * dim:(i + 1) * dim]))
    return out


def _listing(items: list[str], limit: int = 25) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def apply_rules(state_dict: dict[str, np.ndarray], rules: list[Rule], *, ignore: Callable[[str], bool],
                source: str) -> dict:
    missing, bad_shape, used = [], [], set()
    params: dict = {}
    for r in rules:
        absent = [k for k in r.keys if k not in state_dict]
        if absent:
            missing.extend(k for k in absent if k not in missing)
            continue
        wrong = [f"{k} {list(state_dict[k].shape)} (expected {list(s)})"
                 for k, s in zip(r.keys, r.shapes) if tuple(state_dict[k].shape) != s]
        used.update(r.keys)
        if wrong:
            bad_shape.extend(w for w in wrong if w not in bad_shape)
            continue
        value = np.asarray(r.fn(*(state_dict[k] for k in r.keys)), dtype=np.float32)
        node = params
        for p in r.path[:-1]:
            node = node.setdefault(p, {})
        node[r.path[-1]] = value
    unexpected = sorted(k for k in state_dict if k not in used and not ignore(k))
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if bad_shape:
        problems.append(f"wrong shapes: {_listing(bad_shape)}")
    if problems:
        raise ConversionError(f"{source}: cannot convert — " + "; ".join(problems))
    return params


def check_against(params: dict, abstract: dict, source: str) -> None:
    """The converted tree must have exactly the module's structure and shapes."""
    def flat(tree, prefix=()):
        for k, v in tree.items():
            if isinstance(v, dict):
                yield from flat(v, (*prefix, k))
            else:
                yield (*prefix, k), tuple(v.shape)
    got, want = dict(flat(params)), dict(flat(abstract))
    missing = sorted("/".join(map(str, p)) for p in want.keys() - got.keys())
    extra = sorted("/".join(map(str, p)) for p in got.keys() - want.keys())
    shapes = sorted(f"{'/'.join(map(str, p))} {got[p]} vs {want[p]}" for p in got.keys() & want.keys() if got[p] != want[p])
    if missing or extra or shapes:
        raise ConversionError(f"{source}: converted tree does not match the Flax module "
                              f"(missing {missing[:10]}, extra {extra[:10]}, shapes {shapes[:10]})")
