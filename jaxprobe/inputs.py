"""What an analysis config points at, made concrete: the records (real data or the cached synthetic phantom set),
their patient-level split, and the encoders (random reduced, converted folders, or original checkpoints converted
on the fly into the cache with their parity report). Shared by ``jaxprobe.run`` and ``python -m jaxprobe.embed``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

from ml_collections import ConfigDict

log = logging.getLogger("jaxprobe.run")


class RunError(RuntimeError):
    """Bad input to a run (missing data root, unknown encoder, ...); the message says what to change."""


def cache_dir(config: ConfigDict) -> Path:
    return Path(os.path.expanduser(config.cache_dir)).absolute()


def synthetic_paths(config: ConfigDict):
    from .data import make_synthetic
    from .data.synth import SyntheticPaths

    s = config.data.synthetic
    root = cache_dir(config) / "synthetic" / f"n{s.n}-size{s.size}-seed{s.seed}"
    done = root / "COMPLETE"
    if not done.exists():
        log.info(f"generating the synthetic phantom set ({s.n} SIIM-style DICOMs + {s.n} cardiomegaly PNGs) in {root}")
        paths = make_synthetic(root, n=s.n, seed=s.seed, size=s.size)
        done.write_text(json.dumps(dataclasses.asdict(paths)))
    return SyntheticPaths(**json.loads(done.read_text()))


def load_records(config: ConfigDict, workdir: Path):
    from .data import cardiomegaly_records, classification_set, nih_cardiomegaly_records, segmentation_set, siim_records

    d = config.data
    skipped = workdir / "skipped_items.csv" if d.on_error == "skip" else None
    common = dict(on_error=d.on_error, skipped_file=skipped)
    if d.source == "siim":
        if d.root:
            if not Path(d.root).is_dir():
                raise RunError(f"data.root {d.root} is not a folder (SIIM-ACR: dicom-images-train/ + train-rle.csv)")
            records = siim_records(d.root, csv_path=d.csv or None, **common)
        else:
            paths = synthetic_paths(config)
            records = siim_records(paths.siim_root, csv_path=paths.siim_csv, **common)
        if config.target == "pneumothorax":
            records = segmentation_set(records)
        elif config.target == "label":
            records = classification_set(records, seed=d.balance_seed)
        else:
            raise RunError(f"target {config.target!r} does not apply to SIIM-ACR (pneumothorax | label)")
    elif d.source == "cardiomegaly":
        if d.nih_root or d.manifest:
            if not d.chexmask_csv:
                raise RunError("data.chexmask_csv is required with data.nih_root / data.manifest")
            for p in (d.nih_root, d.manifest, d.chexmask_csv):
                if p and not Path(p).exists():
                    raise RunError(f"{p} does not exist")
            if d.nih_root:
                records = nih_cardiomegaly_records(d.nih_root, d.chexmask_csv, min_dice=d.min_dice, **common)
            else:
                records = cardiomegaly_records(d.manifest, d.chexmask_csv, min_dice=d.min_dice, **common)
        elif d.root:
            raise RunError("the cardiomegaly source reads data.nih_root or data.manifest (+ data.chexmask_csv), "
                           "not data.root")
        else:
            paths = synthetic_paths(config)
            records = cardiomegaly_records(paths.cardiomegaly_manifest, paths.chexmask_csv, min_dice=d.min_dice,
                                           **common)
        if config.target == "ctr":
            records = [r for r in records if r.ctr is not None]
        elif config.target not in ("heart", "label"):
            raise RunError(f"target {config.target!r} does not apply to the cardiomegaly source (heart | label | ctr)")
    else:
        raise RunError(f"data.source must be 'siim' or 'cardiomegaly', got {d.source!r}")
    if len(records) < 10:
        raise RunError(f"only {len(records)} usable records for {config.analysis}; need at least 10")
    return records


def split(config: ConfigDict, records, workdir: Path) -> dict[str, str]:
    from .data import resolve_splits, write_splits
    from .data.splits import leaking_patients

    d = config.data
    assignment = resolve_splits(records, split_file=d.split_file or None, fractions=tuple(d.split_fractions),
                                seed=d.split_seed)
    leaks = leaking_patients(records, assignment)
    if leaks:
        raise RunError(f"patients in more than one split: {sorted(leaks)[:5]}")
    write_splits(workdir / "split.csv", records, assignment)
    counts = {s: sum(1 for r in records if assignment[r.image_id] == s) for s in ("train", "val", "test")}
    if min(counts.values()) == 0:
        raise RunError(f"a split is empty {counts}; use more data or other fractions")
    log.info(f"split (patient level, seed {d.split_seed}): {counts}")
    return assignment


def is_random(config: ConfigDict, name: str) -> bool:
    return not config.encoders[name].checkpoint


def is_demo(config: ConfigDict) -> bool:
    """The embedded default: synthetic data or random encoders."""
    data_given = bool(config.data.root or config.data.nih_root or config.data.manifest)
    return not data_given or any(is_random(config, n) for n in config.encoders.names)


def encoder_for(config: ConfigDict, name: str):
    from . import encoders
    from .encoders import checkpoint

    e = config.encoders[name] if name in config.encoders else None
    if e is None or name not in encoders.NAMES:
        raise RunError(f"unknown encoder {name!r}; expected some of {list(encoders.NAMES)}")
    dtype = config.embed.dtype
    size = e.input_size or None
    if not e.checkpoint:
        r = config.encoders.random
        return encoders.load(name, width=r.width, depth=r.depth, num_heads=r.num_heads, seed=r.seed,
                             input_size=size, dtype=dtype)
    src = Path(e.checkpoint)
    if not src.is_dir():
        raise RunError(f"encoders.{name}.checkpoint: {src} is not a folder")
    if checkpoint.is_checkpoint_dir(src):
        return encoders.load(src, input_size=size, dtype=dtype)
    return encoders.load(convert_cached(config, name, src), input_size=size, dtype=dtype)


def convert_cached(config: ConfigDict, name: str, src: Path) -> Path:
    """An original checkpoint folder is converted once into the cache, its parity report kept and shown."""
    from convert import convert

    stat = [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in sorted(src.iterdir()) if p.is_file()]
    key = hashlib.sha256(json.dumps([str(src.absolute()), stat]).encode()).hexdigest()[:16]
    out = cache_dir(config) / "converted" / f"{name}-{key}"
    parity = out / "parity.json"
    if not parity.exists():
        if out.exists():
            import shutil

            shutil.rmtree(out)  # an interrupted conversion: start again
        log.info(f"converting {src} ({name}) into {out}")
        convert(name, src, out, log=log.info)
    report = json.loads(parity.read_text())
    log.info(f"parity of {name}: worst relative error {report['worst_rel']:.2e} "
             f"(tolerance {report['tolerance_rel']:.0e}) -> {'passed' if report['passed'] else 'FAILED'}")
    if not report["passed"]:
        raise RunError(f"{out}: the converted {name} does not match the PyTorch reference (see {parity})")
    return out




SEG_TARGETS = ("pneumothorax", "heart")


def mask_of(config: ConfigDict) -> str | None:
    """The mask structure stored beside the embeddings (segmentation analyses), else None."""
    return config.target if config.target in SEG_TARGETS else None


def store_for(config: ConfigDict, name: str, records, log=log.info):
    """The encoder ``name`` of the analysis and its (built, resumed or reused) embedding store of ``records``."""
    from .embed.records import extract_records

    encoder = encoder_for(config, name)
    log(f"{name}: {encoder}")
    store = extract_records(encoder, records, cache_dir(config) / "embeddings", name=name, mask=mask_of(config),
                            batch_size=config.embed.batch_size, chunk_size=config.embed.chunk_size,
                            workers=config.embed.workers, log=log)
    return encoder, store
