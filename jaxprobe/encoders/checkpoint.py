"""On-disk form of a converted encoder: ``encoder.json`` (architecture, spec, provenance) + Orbax ``params/``."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from jaxprobe.errors import CheckpointError

from . import registry
from .config import ViTConfig
from .spec import EncoderSpec

META_FILE = "encoder.json"
PARAMS_DIR = "params"
FORMAT_VERSION = 1


def is_checkpoint_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / META_FILE).is_file()


def save(out_dir: str | os.PathLike, params: dict, config: ViTConfig, spec: EncoderSpec,
         provenance: dict[str, Any] | None = None) -> Path:
    """Write ``params`` (a pure nested dict matching the module's state) and its metadata to ``out_dir``."""
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    target = out / PARAMS_DIR
    if target.exists():
        raise CheckpointError(f"{target} already exists; choose an empty --out directory or remove it")
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(target, jax.tree.map(lambda a: np.asarray(a, np.float32), params))
    checkpointer.wait_until_finished()
    meta = {
        "format_version": FORMAT_VERSION,
        "family": config.family,
        "config": config.to_dict(),
        "spec": spec.to_dict(),
        "provenance": provenance or {},
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def read_meta(ckpt_dir: str | os.PathLike) -> tuple[ViTConfig, EncoderSpec, dict]:
    path = Path(ckpt_dir) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} not found: {ckpt_dir} is not a converted jaxprobe encoder. Convert an original checkpoint with "
            f"`python -m convert {{{'|'.join(registry.names())}}} --src PATH --out DIR`"
        ) from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    for key in ("family", "config", "spec"):
        if key not in meta:
            raise CheckpointError(f"{path}: missing key {key!r}")
    try:
        return ViTConfig.from_dict(meta["config"]), EncoderSpec.from_dict(meta["spec"]), meta
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None


def restore_params(ckpt_dir: str | os.PathLike, abstract_module: nnx.Module) -> dict:
    """Restore the pure parameter dict, checked against the shapes the module expects."""
    abstract = nnx.to_pure_dict(nnx.state(abstract_module, nnx.Param))
    target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, jnp.float32), abstract)
    path = (Path(ckpt_dir) / PARAMS_DIR).absolute()
    if not path.is_dir():
        raise CheckpointError(f"{path} not found: the checkpoint folder is incomplete (re-run the conversion)")
    try:
        return ocp.StandardCheckpointer().restore(path, target)
    except Exception as e:  # orbax raises several types for structure/shape mismatches
        raise CheckpointError(f"{path}: parameters do not match the architecture in {META_FILE}: {e}") from e
