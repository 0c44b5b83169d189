"""Conversion of an original checkpoint into an Orbax checkpoint with ``encoder.json``, by its registry entry."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from jaxprobe.encoders import build_module, checkpoint, families, registry

from .hf import sha256
from .parity import DEFAULT_TOLERANCE, verify, versions
from .rules import apply_rules, check_against


def convert_params(name: str, src: str | Path):
    """Read the original files as the registry entry ``name`` (its family's reader and rules) and map them onto
    the Flax module; returns (source, params)."""
    entry = registry.get(name)
    fam = families.get(entry.family).converter()
    src = Path(src)
    source = fam.read_source(src, name, entry.spec)
    params = apply_rules(source.state_dict, fam.rules(source.config), ignore=fam.ignore,
                         source=", ".join(map(str, source.weight_files)))
    from flax import nnx

    abstract = nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: build_module(source.config)), nnx.Param))
    check_against(params, abstract, str(src))
    return source, params


def convert(name: str, src: str | Path, out: str | Path, *, parity: bool = True, tolerance: float = DEFAULT_TOLERANCE,
            n_images: int = 3, nonnative_size: int | None = None, seed: int = 0, log=print) -> dict[str, Any]:
    """Port ``src`` to ``out`` (Orbax params + encoder.json); run and write the parity check unless disabled."""
    source, params = convert_params(name, src)
    provenance = {
        "name": name,
        "src": str(Path(src).absolute()),
        "weight_files": [p.name for p in source.weight_files],
        "sha256": sha256(source.weight_files),
        "spec_source": source.spec_source,
        "converted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
    }
    checkpoint.save(out, params, source.config, source.spec, provenance)
    log(f"converted {name}: {sum(v.size for v in _leaves(params)) / 1e6:.1f}M parameters -> {out} "
        f"(preprocessing from {source.spec_source})")
    if not parity:
        return {"passed": None, "skipped": True}
    return verify(out, src, tolerance=tolerance, n_images=n_images, nonnative_size=nonnative_size, seed=seed, log=log)


def _leaves(tree):
    for v in tree.values():
        yield from (_leaves(v) if isinstance(v, dict) else [v])
