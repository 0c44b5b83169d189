"""The ``Encoder`` wrapper (spec + jitted ``embed``) and ``load``: a registered encoder at random init, or a converted folder."""
from __future__ import annotations

import dataclasses
import os
from functools import lru_cache, partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from jaxprobe.errors import ConfigError

from . import checkpoint, families, registry
from .config import ViTConfig
from .spec import EncoderSpec
from .transformer import DTYPES

ARCH_OVERRIDES = ("width", "depth", "num_heads", "mlp_dim", "proj_dim")
RUNTIME_OVERRIDES = ("input_size", "dtype", "precision", "seed")


def build_module(config: ViTConfig, *, dtype: str = "float32", seed: int = 0) -> nnx.Module:
    module_class = families.get(config.family).module_class()
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return module_class(config, dtype=DTYPES[dtype], rngs=nnx.Rngs(seed))


@lru_cache(maxsize=32)
def _abstract_split(config: ViTConfig, dtype: str):
    return nnx.split(nnx.eval_shape(lambda: build_module(config, dtype=dtype)))


def abstract_module(config: ViTConfig, *, dtype: str = "float32") -> nnx.Module:
    """``build_module``'s structure with shapes in place of weights (to restore a checkpoint into), traced once per
    architecture and dtype in a process: tracing a full-size ViT's initialisers takes seconds (CheXagent's about
    3 s on 2 cores; JAX's per-tracer bookkeeping grows with the trace), and a conversion or a run loads the same
    architecture several times. Each call returns a module of its own."""
    graphdef, state = _abstract_split(config, dtype)
    return nnx.merge(graphdef, jax.tree.map(lambda leaf: leaf, state))


def _apply(graphdef, state, pixels):
    module = nnx.merge(graphdef, state)
    g, p = module(pixels)
    return g.astype(jnp.float32), p.astype(jnp.float32)


class Encoder:
    """A frozen encoder: ``.spec`` says what it expects, ``.embed(pixels)`` gives (global, patches)."""

    def __init__(self, module: nnx.Module, config: ViTConfig, spec: EncoderSpec, *, dtype: str = "float32",
                 precision: str | None = None, source: str = "", meta: dict | None = None):
        self.module = module
        self.config = config
        self.spec = spec
        self.dtype = dtype
        # Float32 parity needs full-precision matmuls; on GPUs JAX would otherwise use TF32.
        self.precision = precision or ("highest" if dtype == "float32" else "default")
        self.source = source
        self.meta = meta or {}
        # The weights go to the device once, as row-major device arrays: left as host arrays (a converter's or a
        # state-dict port's numpy, often transposed views) every call re-sent them all, transposing each such view
        # (RAD-DINO: 344 MB and 73 transposes per call; see README, "Where the encoders' CPU time goes").
        self.graphdef, state = nnx.split(module)
        self.state = jax.device_put(state)
        nnx.update(module, self.state)
        self._apply = jax.jit(partial(_apply, self.graphdef))
        self._sharded: dict = {}

    def __repr__(self) -> str:
        c = self.config
        return (f"Encoder({c.family}, width={c.width}, depth={c.depth}, heads={c.num_heads}, "
                f"input={self.spec.input_size}, grid={self.spec.grid}, dtype={self.dtype}, source={self.source!r})")

    @property
    def num_params(self) -> int:
        return sum(x.size for x in jax.tree.leaves(self.state))

    def identity(self) -> dict[str, Any]:
        """What determines this encoder's outputs (used to key embedding stores)."""
        return {"source": self.source, "config": self.config.to_dict(), "spec": self.spec.to_dict(),
                "dtype": self.dtype, "precision": self.precision,
                "weights_sha256": self.meta.get("provenance", {}).get("sha256"), "seed": self.meta.get("seed")}

    def provenance(self) -> dict[str, Any]:
        """Where this encoder's weights came from, as results.json records it: family, the converted folder (or
        ``random:<name>``), the hub snapshot ``repo@commit`` it was converted from (if any), the weights' SHA-256."""
        prov = self.meta.get("provenance", {})
        return {"family": self.config.family, "source": self.source, "random": self.source.startswith("random:"),
                "hub": prov.get("hub"), "original": prov.get("src"), "weights_sha256": prov.get("sha256")}

    def check_pixels(self, pixels) -> None:
        s = self.spec.input_size
        shape = tuple(pixels.shape)
        if len(shape) != 4 or shape[1:] != (s, s, 3):
            raise ValueError(f"{self.source or self.config.family}: expected pixels [B, {s}, {s}, 3], got {list(shape)}")

    def embed(self, pixels) -> tuple[jax.Array, jax.Array]:
        """``pixels`` float32 [B, S, S, 3], normalised per ``spec`` -> (global [B, D], patches [B, G, G, C])."""
        self.check_pixels(pixels)
        with jax.default_matmul_precision(self.precision):
            pixels = jnp.asarray(pixels, jnp.float32)
            return self._forward(getattr(pixels, "sharding", None))(self.state, pixels)  # None: traced

    def _forward(self, sharding):
        """The compiled forward for pixels laid out as ``sharding``. Images are independent, so a batch split over
        a mesh's devices runs as one program per shard (``shard_map``): each device embeds its own rows. Left to
        XLA's partitioner, the native CPU kernels (``cpu_kernels``), which it cannot split, would get the whole
        batch gathered onto every device."""
        spec = getattr(sharding, "spec", None)
        if not (isinstance(sharding, NamedSharding) and sharding.mesh.size > 1 and spec and spec[0] is not None):
            return self._apply
        key = (sharding.mesh, spec[0])
        if key not in self._sharded:
            rows = PartitionSpec(spec[0])
            self._sharded[key] = jax.jit(jax.shard_map(partial(_apply, self.graphdef), mesh=sharding.mesh,
                                                       in_specs=(PartitionSpec(), rows), out_specs=(rows, rows),
                                                       check_vma=False))
        return self._sharded[key]


def _resolve_arch_overrides(name: str, cfg: ViTConfig, overrides: dict) -> ViTConfig:
    changes = {k: overrides[k] for k in ARCH_OVERRIDES if k in overrides}
    if not changes:
        return cfg
    if "width" in changes:
        changes.setdefault("num_heads", max(1, changes["width"] // 64))
        changes.setdefault("mlp_dim", 4 * changes["width"])
    if "proj_dim" in changes and cfg.proj_dim is None:
        raise ValueError(f"{name}: proj_dim applies only to encoders with a projection (biomedclip)")
    return dataclasses.replace(cfg, **changes)


def _with_input_size(spec: EncoderSpec, input_size: int | None) -> EncoderSpec:
    if input_size is None:
        return spec
    if input_size % spec.patch_size:
        raise ValueError(f"input_size {input_size} is not a multiple of the patch size {spec.patch_size}")
    return dataclasses.replace(spec, input_size=int(input_size))


def load(name_or_dir: str | os.PathLike, **overrides) -> Encoder:
    """Load a registered encoder at random init (``rad_dino``, ``chexagent``, ``biomedclip``, ...) or a converted folder.

    Overrides: ``input_size`` (position embeddings are resampled as the reference code does), ``dtype``
    ("float32" | "bfloat16"), ``precision`` (matmul precision), ``seed`` (random init), and for named encoders
    the architecture: ``width``, ``depth``, ``num_heads``, ``mlp_dim``, ``proj_dim``.
    """
    allowed = set(ARCH_OVERRIDES) | set(RUNTIME_OVERRIDES)
    unknown = set(overrides) - allowed
    if unknown:
        raise TypeError(f"load(): unknown overrides {sorted(unknown)}; allowed: {sorted(allowed)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    dtype = overrides.get("dtype", "float32")
    precision = overrides.get("precision")
    key = str(name_or_dir)
    if key in registry.names():
        entry = registry.get(key)
        cfg, spec = entry.config, entry.spec
        cfg = _resolve_arch_overrides(key, cfg, overrides)
        spec = dataclasses.replace(spec, global_dim=cfg.global_dim, patch_dim=cfg.width)
        spec = _with_input_size(spec, overrides.get("input_size"))
        module = build_module(cfg, dtype=dtype, seed=int(overrides.get("seed", 0)))
        return Encoder(module, cfg, spec, dtype=dtype, precision=precision, source=f"random:{key}",
                       meta={"seed": int(overrides.get("seed", 0))})
    if not os.path.isdir(key):
        raise ConfigError(f"{key!r} is neither an encoder name {list(registry.names())} nor a folder")
    arch = sorted(set(overrides) & set(ARCH_OVERRIDES))
    if arch:
        raise ValueError(f"{key}: {arch} cannot be changed for a converted checkpoint (the weights fix them)")
    cfg, spec, meta = checkpoint.read_meta(key)
    spec = _with_input_size(spec, overrides.get("input_size"))
    abstract = abstract_module(cfg, dtype=dtype)
    params = checkpoint.restore_params(key, abstract)
    state = nnx.state(abstract)
    nnx.replace_by_pure_dict(state, params)
    module = nnx.merge(nnx.graphdef(abstract), state)
    return Encoder(module, cfg, spec, dtype=dtype, precision=precision, source=os.path.abspath(key), meta=meta)
