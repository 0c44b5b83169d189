"""The images an analysis config points at, made concrete: records of its data source (real files, the cached
synthetic phantom set, or a prepared TFDS dataset), the cases its task uses and their patient-level split, as
one ``Inputs`` view. Shared by ``jaxprobe.run`` and ``python -m jaxprobe.embed``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Callable

import numpy as np
from ml_collections import ConfigDict

from . import config as config_lib
from .errors import RunError, read_json
from .locking import exclusive
from .tasks import Task

log = logging.getLogger("jaxprobe.run")


def synthetic_key(config: ConfigDict, prefix: str = "") -> str:
    """The cache folder name of the phantom set ``data.synthetic`` describes, with the generator's version."""
    from .data.synth import GENERATOR_VERSION

    s = config.data.synthetic
    return f"{prefix}v{GENERATOR_VERSION}-n{s.n}-size{s.size}-seed{s.seed}-pos{s.positive_fraction:g}"


def synthetic_paths(config: ConfigDict):
    from .data import make_synthetic
    from .data.synth import SyntheticPaths

    s = config.data.synthetic
    root = config_lib.cache_dir(config) / "synthetic" / synthetic_key(config)
    done = root / "COMPLETE"
    with exclusive(root.with_name(root.name + ".lock"), "generating the phantom set"):
        if not done.exists():
            log.info(f"generating the synthetic phantom set ({s.n} SIIM-style DICOMs + {s.n} cardiomegaly PNGs) in "
                     f"{root}")
            paths = make_synthetic(root, n=s.n, seed=s.seed, size=s.size, positive_fraction=s.positive_fraction)
            done.write_text(json.dumps(dataclasses.asdict(paths)))
    return SyntheticPaths(**read_json(done, RunError, f"remove {root} to generate the phantoms again"))


# The targets each data source offers, by kind (jaxprobe.tasks.Task.target_kind).
SOURCES = {"siim": {"pneumothorax": "mask", "label": "label"},
           "cardiomegaly": {"heart": "mask", "label": "label", "ctr": "value"},
           "csv": {"mask": "mask", "label": "label", "value": "value"}}


def check_target(config: ConfigDict, task: Task) -> None:
    """The analysis's target exists in its data source and is of the kind its task reads."""
    offered = SOURCES.get(config.data.source)
    if offered is None:
        raise RunError(f"data.source must be one of {sorted(SOURCES)}, got {config.data.source!r}")
    kind = offered.get(config.target)
    if kind is None:
        raise RunError(f"target {config.target!r} does not apply to the {config.data.source} source "
                       f"({' | '.join(offered)})")
    if kind != task.target_kind:
        raise RunError(f"target {config.target!r} is a {kind}; task {task.name!r} reads a {task.target_kind}")


def table_columns(config: ConfigDict):
    from .data.csvsource import Columns

    return Columns(**{k: v for k, v in config.data.table.items() if k != "path"})


def cohort_csv(config: ConfigDict) -> Path:
    """A user cohort's CSV (``data.table.path``), or the embedded default's phantom cohort written as PNG + CSV."""
    from .data.csvsource import write_phantom_cohort

    if config.data.table.path:
        return Path(config.data.table.path)
    s = config.data.synthetic
    root = config_lib.cache_dir(config) / "synthetic" / synthetic_key(config, "csv-")
    done = root / "COMPLETE"
    with exclusive(root.with_name(root.name + ".lock"), "writing the phantom cohort"):
        if not done.exists():
            log.info(f"writing the synthetic phantom cohort ({s.n} PNGs + heart masks + cohort.csv) in {root}")
            done.write_text(write_phantom_cohort(root, n=s.n, seed=s.seed, size=s.size))
    return Path(done.read_text())


def source_records(config: ConfigDict, workdir: Path):
    """Every usable record of the analysis's data source (the original files, or the synthetic phantoms)."""
    from .data import cardiomegaly_records, nih_cardiomegaly_records, siim_records

    d = config.data
    skipped = workdir / "skipped_items.csv" if d.on_error == "skip" else None
    common = dict(on_error=d.on_error, skipped_file=skipped)
    views = tuple(str(v).upper() for v in d.views)
    if d.source == "csv":
        from .data.csvsource import csv_records

        return csv_records(cohort_csv(config), table_columns(config), target=config.target, **common)
    # with "skip", every image is decoded now, so undecodable ones are listed before extraction rather than
    # stopping it (about 10 ms an image); with "raise" the first one stops the extraction, naming the file
    common["verify_pixels"] = d.on_error == "skip"
    if d.source == "siim":
        if d.root:
            if not Path(d.root).is_dir():
                raise RunError(f"data.root {d.root} is not a folder (SIIM-ACR: dicom-images-train/ + train-rle.csv)")
            return siim_records(d.root, csv_path=d.csv or None, **common)
        paths = synthetic_paths(config)
        return siim_records(paths.siim_root, csv_path=paths.siim_csv, **common)
    if d.nih_root or d.manifest:
        if not d.chexmask_csv:
            raise RunError("data.chexmask_csv is required with data.nih_root / data.manifest")
        for p in (d.nih_root, d.manifest, d.chexmask_csv):
            if p and not Path(p).exists():
                raise RunError(f"{p} does not exist")
        if d.nih_root:
            return nih_cardiomegaly_records(d.nih_root, d.chexmask_csv, min_dice=d.min_dice, views=views, **common)
        return cardiomegaly_records(d.manifest, d.chexmask_csv, min_dice=d.min_dice, views=views, **common)
    if d.root:
        raise RunError("the cardiomegaly source reads data.nih_root or data.manifest (+ data.chexmask_csv), "
                       "not data.root")
    paths = synthetic_paths(config)
    return cardiomegaly_records(paths.cardiomegaly_manifest, paths.chexmask_csv, min_dice=d.min_dice, views=views,
                                **common)


PAPER_COHORTS = {  # what the study reports, logged beside the cohort actually read
    "siim": "the paper: 10,675 SIIM-ACR stage-1 images, 2,379 with pneumothorax (classification: balanced "
            "2,379 + 2,379)",
    "cardiomegaly": "the paper: 30,000 PA radiographs (private Emory cohort), balanced 15,000 / 15,000",
}


def select_records(records, config: ConfigDict, task: Task):
    """The cases the task uses. With ``data.balance`` the cohort is first balanced (every case of the rarer
    label and as many seeded others, ``jaxprobe.data.splits.balanced``); then a segmentation task keeps the
    images whose target mask is not empty (the study trains segmenters on positives), classification every
    labelled image, regression the images whose target value is defined."""
    from .data import classification_set

    if config.data.balance:
        records = classification_set(records, seed=config.data.balance_seed)
    if task.cases == "positives":
        return [r for r in records if dict(r.masks).get(config.target)]
    if task.cases == "labelled":
        return list(records)
    return [r for r in records if getattr(r, config.target) is not None]


def load_records(config: ConfigDict, task: Task, workdir: Path):
    """(all records of the source, the records the task uses)."""
    check_target(config, task)
    every = source_records(config, workdir)
    records = select_records(every, config, task)
    if len(records) < 10:
        raise RunError(f"only {len(records)} usable records for {config.analysis}; need at least 10")
    log_cohort(config, [r.label for r in records], f"of {len(every)} read")
    return every, records


def log_cohort(config: ConfigDict, labels, where: str) -> None:
    """The cohort's counts, beside the paper's."""
    positives, d = sum(1 for y in labels if y == 1), config.data
    log.info(f"cohort: {len(labels)} images, {positives} positive / {len(labels) - positives} negative"
             f"{' (balanced)' if d.balance else ''}, {where}"
             + (f"; {PAPER_COHORTS[d.source]}" if d.source in PAPER_COHORTS else ""))


def split(config: ConfigDict, records, workdir: Path, every=None) -> dict[str, str]:
    """The patient-level split of ``records``. A seeded split is drawn over ``every`` record of the source (the
    whole cohort, before balancing or the task's selection) and restricted to ``records``, as a prepared
    dataset's stored split is, so both ways of reading give the same split and the same balanced cases."""
    from .data import resolve_splits
    from .data.splits import leaking_patients

    d = config.data
    if d.source == "csv" and d.table.split:  # the cohort's own split column
        from .data.csvsource import csv_splits

        assignment = csv_splits(cohort_csv(config), table_columns(config), records)
    elif d.split_file:
        assignment = resolve_splits(records, split_file=d.split_file, fractions=tuple(d.split_fractions),
                                    seed=d.split_seed)
    else:
        whole = resolve_splits(every if every is not None else records, fractions=tuple(d.split_fractions),
                               seed=d.split_seed)
        assignment = {r.image_id: whole[r.image_id] for r in records}
    leaks = leaking_patients(records, assignment)
    if leaks:
        raise RunError(f"patients in more than one split: {sorted(leaks)[:5]}")
    return assignment


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


def reading(config: ConfigDict) -> dict:
    """How images are turned into 8 bits and masks onto the encoder's grid (part of every store's key)."""
    d = config.data
    return {"read": {"scaling": d.scaling}, "mask": {"resample": d.mask_resample, "threshold": d.mask_threshold}}


def inputs_from_records(records, assignment: dict[str, str], options: dict) -> Inputs:
    """``options``: ``reading(config)``."""
    from .data import read_image
    from .data.loaders import record_loader, record_targets

    return Inputs(ids=[f"{r.source}:{r.image_id}" for r in records], image_ids=[r.image_id for r in records],
                  splits=[assignment[r.image_id] for r in records], targets=record_targets(records),
                  extra={"paths": [r.path for r in records], "reading": options},
                  make_loader=lambda spec, mask: record_loader(records, spec, mask, options["read"], options["mask"]),
                  read=lambda i: read_image(records[i].path, **options["read"]))


def prepared_inputs(config: ConfigDict, task: Task) -> Inputs:
    """The analysis's examples from a prepared TFDS dataset (prepared on first use, reused afterwards)."""
    from .data.tfds import prepare
    from .data.splits import balanced
    from .data.tfds.index import example_index, select
    from .data.loaders import prepared_loader, prepared_targets

    d = config.data
    dataset = {"siim": "siim_acr_pneumothorax", "cardiomegaly": "cxr_cardiomegaly"}.get(d.source)
    if dataset is None:
        raise RunError(f"data.prepared=true reads the SIIM-ACR or cardiomegaly sources; {d.source!r} is read from "
                       "its files (data.prepared=false)")
    manual = d.root if d.source == "siim" else (d.nih_root or (str(Path(d.manifest).parent) if d.manifest else ""))
    options = {"split_seed": d.split_seed, "split_fractions": tuple(d.split_fractions),
               "split_file": d.split_file or None}
    if not manual:
        s = d.synthetic
        options.update(synthetic=True, synthetic_n=s.n, synthetic_size=s.size, synthetic_seed=s.seed)
        if d.source == "siim":
            options["synthetic_positive_fraction"] = float(s.positive_fraction)
    if d.source == "cardiomegaly":
        options["views"] = tuple(str(v).upper() for v in d.views)
    elif not Path(manual).is_dir():
        raise RunError(f"{manual} is not a folder (the prepared dataset is built from it)")
    builder = prepare(dataset, config=options, data_dir=config_lib.cache_dir(config) / "tfds", manual_dir=manual or None,
                      workers=config.embed.workers, on_error=d.on_error)
    check_target(config, task)
    # The index knows labels, not masks: SIIM-ACR's pneumothorax mask is non-empty exactly for the positives,
    # every CheXmask heart mask is non-empty (an empty one is a DataError when the cohort is read).
    # The same order as the files path: the stored split covers the whole cohort, the balancing draws over the
    # whole cohort in image-id order (jaxprobe.data.splits.balanced), then the task's selection.
    selection = {"positives": "segmentation" if d.source == "siim" else "all", "labelled": "all",
                 "valued": "all"}[task.cases]
    index = example_index(builder)
    source = builder.info.metadata["source"]
    every = sorted((r for split_name in ("train", "val", "test") for r in index[split_name]), key=lambda r: r.image_id)
    kept = {(r.split, r.index) for r in (every if not d.balance else
                                         [every[i] for i in balanced([r.label for r in every], d.balance_seed)])}
    picked = []  # (split, data-source position, IndexRow)
    for split_name in ("train", "val", "test"):
        rows = {r.index: r for r in index[split_name]}
        for position in select(index[split_name], selection):
            r = rows[position]
            if (split_name, position) not in kept or (task.cases == "valued" and getattr(r, config.target) is None):
                continue
            picked.append((split_name, position, r))
    log_cohort(config, [r.label for _, _, r in picked], f"of {len(every)} in the prepared dataset")
    sources = {s: builder.as_data_source(s) for s in ("train", "val", "test")}
    by_split = {s: [p for sp, p, _ in picked if sp == s] for s in sources}
    offsets = {"train": 0, "val": len(by_split["train"]), "test": len(by_split["train"]) + len(by_split["val"])}

    options = reading(config)
    if options["read"] != {"scaling": "range"}:
        raise RunError(f"a prepared dataset holds images decoded once with the default reading; data.scaling="
                       f"{d.scaling!r} needs the original files (data.prepared=false)")

    def make_loader(spec, mask):
        loaders = {s: prepared_loader(sources[s], spec, mask, by_split[s], options["mask"]) for s in sources}
        return lambda i: loaders[picked[i][0]](i - offsets[picked[i][0]])

    return Inputs(
        ids=[f"{source}:{r.image_id}" for _, _, r in picked], image_ids=[r.image_id for _, _, r in picked],
        splits=[s for s, _, _ in picked],
        targets=prepared_targets([r for _, _, r in picked]),
        extra={"dataset": f"{builder.name}/{builder.builder_config.name}:{builder.version}", "task": selection,
               "reading": options,
               "balance_seed": d.balance_seed},
        make_loader=make_loader, read=lambda i: sources[picked[i][0]][picked[i][1]]["image"])


def load_inputs(config: ConfigDict, task: Task, workdir: Path) -> Inputs:
    """Records + seeded split from the original files, or a prepared dataset (``data.prepared``)."""
    if config.data.prepared:
        inputs = prepared_inputs(config, task)
    else:
        every, records = load_records(config, task, workdir)
        inputs = inputs_from_records(records, split(config, records, workdir, every), reading(config))
    counts = {s: len(inputs.rows(s)) for s in ("train", "val", "test")}
    if min(counts.values()) == 0:
        raise RunError(f"a split is empty {counts}; use more data or other fractions")
    inputs.write_split(workdir / "split.csv")
    log.info(f"{len(inputs.ids)} images ({config.data.source}, target {config.target}"
             f"{', prepared dataset' if config.data.prepared else ''}), split {counts}")
    return inputs
