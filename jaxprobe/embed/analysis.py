"""The encoders of an analysis config (random reduced, converted folders, or original checkpoints converted once
into the cache with their parity report) and their embedding stores of the analysis's inputs."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from ml_collections import ConfigDict

from .. import config as config_lib
from ..errors import ConversionError, RunError, read_json
from ..inputs import Inputs
from ..tasks import Task
from .extract import extract

log = logging.getLogger("jaxprobe.run")


def display_name(config: ConfigDict, name: str) -> str:
    """How tables and figures name encoder ``name``: the config's display_name, else the registry's."""
    from ..encoders import registry

    block = config.encoders[name] if name in config.encoders else None
    return (block.display_name if block is not None else "") or registry.display_name(name)


def family_of(config: ConfigDict, name: str) -> str:
    """The family of encoder ``name``: declared in its config block, or its registry entry's."""
    from ..encoders import registry

    declared = config.encoders[name].family
    if name in registry.names():
        entry_family = registry.get(name).family
        if declared and declared != entry_family:
            raise RunError(f"encoders.{name}.family is {declared!r} but the registered {name} is a {entry_family} "
                           "encoder; give the encoder another name to declare a new one")
        return entry_family
    if not declared:
        raise RunError(f"encoder {name!r} is not registered ({list(registry.names())}); declare it with "
                       f"encoders.{name}.family and encoders.{name}.checkpoint")
    return declared


def encoder_for(config: ConfigDict, name: str):
    from .. import encoders
    from ..encoders import checkpoint, registry

    e = config.encoders[name] if name in config.encoders else None
    if e is None:
        raise RunError(f"encoder {name!r} has no encoders.{name} block in the config")
    family = family_of(config, name)
    dtype = config.embed.dtype
    size = e.input_size or None
    if not e.checkpoint and name not in registry.names():
        raise RunError(f"encoders.{name}.checkpoint is required: a config-declared encoder's weights fix its "
                       "architecture")
    if not e.checkpoint:
        r = config.encoders.random
        return encoders.load(name, width=r.width, depth=r.depth, num_heads=r.num_heads, seed=r.seed,
                             input_size=size, dtype=dtype)
    src, hub = resolve_checkpoint(e.checkpoint, name)
    folder = src if checkpoint.is_checkpoint_dir(src) else convert_cached(
        config, name if name in registry.names() else family, src, hub)
    found = checkpoint.read_meta(folder)[0].family
    if found != family:  # a BiomedCLIP folder under rad_dino would run and be reported as RAD-DINO
        raise RunError(f"encoders.{name}.checkpoint: {src} holds a {found} encoder, but {name} is a {family} "
                       "encoder")
    return encoders.load(folder, input_size=size, dtype=dtype)


def resolve_checkpoint(text: str, name: str) -> tuple[Path, str | None]:
    """A checkpoint folder, or a Hugging Face hub id ``org/name[@revision]`` resolved through ``huggingface_hub``;
    returns (folder, ``repo@commit`` or None)."""
    from ..encoders.conversion.hub import resolve

    try:
        return resolve(text, f"encoders.{name}.checkpoint", log=lambda m: log.info(f"{name}: {m}"))
    except ConversionError as e:
        raise RunError(str(e)) from None


def convert_cached(config: ConfigDict, name: str, src: Path, hub: str | None = None) -> Path:
    """An original checkpoint folder is converted once into the cache, its parity report kept and shown. ``name``
    is the registry entry (or, for a config-declared encoder, the family) it is converted as; a hub snapshot is
    keyed by ``repo@commit`` (recorded in the converted folder's encoder.json)."""
    from ..encoders.conversion import convert

    stat = [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in sorted(src.iterdir()) if p.is_file()]
    key = hashlib.sha256(json.dumps([hub or str(src.absolute()), stat]).encode()).hexdigest()[:16]
    out = config_lib.cache_dir(config) / "converted" / f"{name}-{key}"
    parity = out / "parity.json"
    if not parity.exists():
        if out.exists():
            import shutil

            shutil.rmtree(out)  # an interrupted conversion: start again
        log.info(f"converting {src} ({name}) into {out}")
        convert(name, src, out, log=log.info, hub=hub)
    report = read_json(parity, ConversionError, f"remove {out} to convert again")
    log.info(f"parity of {name}: worst relative error {report['worst_rel']:.2e} "
             f"(tolerance {report['tolerance_rel']:.0e}) -> {'passed' if report['passed'] else 'FAILED'}")
    if not report["passed"]:
        raise RunError(f"{out}: the converted {name} does not match the PyTorch reference (see {parity})")
    return out


def store_for(config: ConfigDict, task: Task, name: str, inputs: Inputs, features, log=log.info):
    """The encoder ``name`` of the analysis and its (built, resumed, shared or reused) embedding store of ``inputs``.

    The store holds ``features`` (what the head reads: ``jaxprobe.heads.FEATURES``) and is keyed by the encoder and
    the images alone, so the analyses of one image set share it; a mask target is a side array of it, keyed by
    the target and how masks are resampled."""
    encoder = encoder_for(config, name)
    log(f"{name}: {encoder}")
    mask = config.target if task.target_kind == "mask" else None
    reading = inputs.extra.get("reading", {})
    extra = {**inputs.extra, "reading": {k: v for k, v in reading.items() if k != "mask"}}
    mask_settings = {"target": mask, **reading.get("mask", {})} if mask else None
    root = config_lib.cache_dir(config) / "embeddings"
    store = extract(encoder, inputs.ids, inputs.make_loader(encoder.spec, mask), root, name=name,
                    features=features, mask_size=encoder.spec.input_size if mask else None,
                    mask_settings=mask_settings, targets=inputs.targets, extra=extra,
                    batch_size=config.embed.batch_size, chunk_size=config.embed.chunk_size,
                    workers=config.embed.workers, log=log)
    note_kernel_path(name, store, log)
    return encoder, store


def note_kernel_path(name: str, store, log=log.info) -> None:
    """Say so when a store's embeddings were computed on another CPU kernel path than this process would take.
    Stores are keyed by what determines an encoder's outputs, and the native and XLA paths agree to float32
    rounding, so the store is used; results.json records the path that computed it (``embedded_with``)."""
    from ..encoders import cpu_kernels

    made = store.meta.get("versions", {}).get("cpu_kernels")
    now = cpu_kernels.summary()
    if made is None:
        log(f"{name}: the store {store.path} does not record which encoder CPU kernels computed it (written by a "
            f"jaxprobe before they were recorded; this process's: {now})")
    elif made.split(" (")[0] != now.split(" (")[0]:  # "native", "XLA" or "not used" (an accelerator)
        log(f"{name}: the embeddings in {store.path} were computed on another path (encoder CPU kernels: {made}) "
            f"than this process's ({now}); the paths agree within the encoders' float32 parity")
