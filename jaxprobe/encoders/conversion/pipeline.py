"""Conversion of an original checkpoint into an Orbax checkpoint with ``encoder.json``, as a registry entry
(``rad_dino``: its family's reader, its preprocessing as the fallback) or as a family (``dinov3``: the family
reader's own defaults). The reader decides the family of what it found (``open_clip`` reads timm-backed and native
towers, ``dinov2`` plain and with-registers folders); that family's rules map the tensors."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from jaxprobe.encoders import abstract_module, checkpoint, families, registry

from .hf import sha256
from .parity import DEFAULT_TOLERANCE, verify, versions
from .rules import ConversionError, apply_rules, check_against


def reader(name: str):
    """(conversion module, fallback spec, required family or None) of a registry entry or a family name."""
    if name in registry.names():
        entry = registry.get(name)
        return families.get(entry.family).converter(), entry.spec, entry.family
    if name in families.names():
        module = families.get(name).converter()
        return module, getattr(module, "DEFAULT_SPEC", None), None
    raise ConversionError(f"{name!r} is neither a registered encoder {list(registry.names())} nor an encoder family "
                          f"{list(families.names())}")


def convert_params(name: str, src: str | Path):
    """Read the original files as the registry entry or family ``name`` and map them onto the Flax module of the
    family the reader found; returns (source, params)."""
    module, default, required = reader(name)
    src = Path(src)
    source = module.read_source(src, name, default)
    if required and source.config.family != required:
        raise ConversionError(f"{src}: holds a {source.config.family} encoder, but {name} is a {required} encoder")
    rules_of = families.get(source.config.family).converter()
    params = apply_rules(source.state_dict, rules_of.rules(source.config), ignore=rules_of.ignore,
                         source=", ".join(map(str, source.weight_files)))
    from flax import nnx

    abstract = nnx.to_pure_dict(nnx.state(abstract_module(source.config), nnx.Param))
    check_against(params, abstract, str(src))
    return source, params


def convert(name: str, src: str | Path, out: str | Path, *, parity: bool = True, tolerance: float = DEFAULT_TOLERANCE,
            n_images: int = 3, nonnative_size: int | None = None, seed: int = 0, log=print,
            hub: str | None = None) -> dict[str, Any]:
    """Port ``src`` to ``out`` (Orbax params + encoder.json); run and write the parity check unless disabled.
    ``hub`` (``repo@commit``) records where a hub snapshot came from."""
    source, params = convert_params(name, src)
    provenance = {
        "name": name,
        "family": source.config.family,
        "src": str(Path(src).absolute()),
        "hub": hub,
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
