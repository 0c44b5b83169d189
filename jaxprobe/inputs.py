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
from typing import Callable

import numpy as np
from ml_collections import ConfigDict

from .errors import RunError

log = logging.getLogger("jaxprobe.run")


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
    from .data import resolve_splits
    from .data.splits import leaking_patients

    d = config.data
    assignment = resolve_splits(records, split_file=d.split_file or None, fractions=tuple(d.split_fractions),
                                seed=d.split_seed)
    leaks = leaking_patients(records, assignment)
    if leaks:
        raise RunError(f"patients in more than one split: {sorted(leaks)[:5]}")
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


@dataclasses.dataclass
class Inputs:
    """The analysis's images, whichever way they are read: one row per image, in store order."""

    ids: list[str]  # "<source>:<image_id>": the store's row ids and the prediction files' case ids
    image_ids: list[str]
    splits: list[str]  # "train" | "val" | "test" per row (patient level)
    targets: dict[str, np.ndarray]  # "label" [N] int8, "ctr" [N] float32 (NaN where undefined)
    extra: dict  # what else identifies the inputs in the store key (file paths, or the prepared dataset)
    make_loader: Callable  # (spec, mask name | None) -> row -> {"pixels": [S,S,3], "mask": [S,S]}
    read: Callable[[int], np.ndarray]  # row -> uint8 [H, W] image (overlays)

    def rows(self, split: str) -> np.ndarray:
        return np.array([i for i, s in enumerate(self.splits) if s == split], np.int64)

    def write_split(self, path: Path) -> None:
        with open(path, "w") as f:
            f.write("image_id,split\n")
            f.writelines(f"{i},{s}\n" for i, s in zip(self.image_ids, self.splits))


def inputs_from_records(records, assignment: dict[str, str]) -> Inputs:
    from .data import read_image
    from .embed.records import record_loader, record_targets

    return Inputs(ids=[f"{r.source}:{r.image_id}" for r in records], image_ids=[r.image_id for r in records],
                  splits=[assignment[r.image_id] for r in records], targets=record_targets(records),
                  extra={"paths": [r.path for r in records]},
                  make_loader=lambda spec, mask: record_loader(records, spec, mask),
                  read=lambda i: read_image(records[i].path))


def prepared_inputs(config: ConfigDict) -> Inputs:
    """The analysis's examples from a prepared TFDS dataset (prepared on first use, reused afterwards)."""
    from .data.tfds import prepare
    from .data.tfds.index import example_index, select
    from .embed.prepared import prepared_loader, prepared_targets

    d = config.data
    dataset = {"siim": "siim_acr_pneumothorax", "cardiomegaly": "cxr_cardiomegaly"}.get(d.source)
    if dataset is None:
        raise RunError(f"data.source must be 'siim' or 'cardiomegaly', got {d.source!r}")
    manual = d.root if d.source == "siim" else (d.nih_root or (str(Path(d.manifest).parent) if d.manifest else ""))
    options = {"split_seed": d.split_seed, "split_fractions": tuple(d.split_fractions),
               "split_file": d.split_file or None}
    if not manual:
        s = d.synthetic
        options.update(synthetic=True, synthetic_n=s.n, synthetic_size=s.size, synthetic_seed=s.seed)
    elif not Path(manual).is_dir():
        raise RunError(f"{manual} is not a folder (the prepared dataset is built from it)")
    builder = prepare(dataset, config=options, data_dir=cache_dir(config) / "tfds", manual_dir=manual or None,
                      workers=config.embed.workers, on_error=d.on_error)
    task = {"pneumothorax": "segmentation", "label": "classification" if d.source == "siim" else "all"}.get(
        config.target, "all")
    index = example_index(builder)
    source = builder.info.metadata["source"]
    picked = []  # (split, data-source position, IndexRow)
    for split_name in ("train", "val", "test"):
        rows = {r.index: r for r in index[split_name]}
        for position in select(index[split_name], task, seed=d.balance_seed):
            r = rows[position]
            if config.target == "ctr" and r.ctr is None:
                continue
            picked.append((split_name, position, r))
    sources = {s: builder.as_data_source(s) for s in ("train", "val", "test")}
    by_split = {s: [p for sp, p, _ in picked if sp == s] for s in sources}
    offsets = {"train": 0, "val": len(by_split["train"]), "test": len(by_split["train"]) + len(by_split["val"])}

    def make_loader(spec, mask):
        loaders = {s: prepared_loader(sources[s], spec, mask, by_split[s]) for s in sources}
        return lambda i: loaders[picked[i][0]](i - offsets[picked[i][0]])

    return Inputs(
        ids=[f"{source}:{r.image_id}" for _, _, r in picked], image_ids=[r.image_id for _, _, r in picked],
        splits=[s for s, _, _ in picked],
        targets=prepared_targets([r for _, _, r in picked]),
        extra={"dataset": f"{builder.name}/{builder.builder_config.name}:{builder.version}", "task": task,
               "balance_seed": d.balance_seed},
        make_loader=make_loader, read=lambda i: sources[picked[i][0]][picked[i][1]]["image"])


def load_inputs(config: ConfigDict, workdir: Path) -> Inputs:
    """Records + seeded split from the original files, or a prepared dataset (``data.prepared``)."""
    if config.data.prepared:
        inputs = prepared_inputs(config)
    else:
        records = load_records(config, workdir)
        inputs = inputs_from_records(records, split(config, records, workdir))
    counts = {s: len(inputs.rows(s)) for s in ("train", "val", "test")}
    if min(counts.values()) == 0:
        raise RunError(f"a split is empty {counts}; use more data or other fractions")
    inputs.write_split(workdir / "split.csv")
    log.info(f"{len(inputs.ids)} images ({config.data.source}, target {config.target}"
             f"{', prepared dataset' if config.data.prepared else ''}), split {counts}")
    return inputs


def store_for(config: ConfigDict, name: str, inputs: Inputs, log=log.info):
    """The encoder ``name`` of the analysis and its (built, resumed or reused) embedding store of ``inputs``."""
    from .embed import extract

    encoder = encoder_for(config, name)
    log(f"{name}: {encoder}")
    mask = mask_of(config)
    store = extract(encoder, inputs.ids, inputs.make_loader(encoder.spec, mask), cache_dir(config) / "embeddings",
                    name=name, mask_size=encoder.spec.input_size if mask else None, targets=inputs.targets,
                    extra={**inputs.extra, "mask": mask}, batch_size=config.embed.batch_size,
                    chunk_size=config.embed.chunk_size, workers=config.embed.workers, log=log)
    return encoder, store
