"""Get a prepared dataset by name: build it on first use, reuse it afterwards.

>>> from jaxprobe.data import tfds as prepared
>>> builder = prepared.prepare("siim_acr_pneumothorax", config="synthetic", data_dir="/data/tfds")
>>> train = builder.as_data_source("train")          # random access, numpy, no TensorFlow
>>> example = train[0]                               # {"image": uint8 [H, W], "masks": {...}, "label": 0/1, ...}

Once this package is imported the builders are registered with TFDS, so
``tfds.data_source("siim_acr_pneumothorax/synthetic", data_dir=...)`` works too; a prepared folder also reads
with stock TFDS alone: ``tfds.builder_from_directory(folder).as_data_source()``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
from pathlib import Path

import tensorflow_datasets as tfds

from ...locking import exclusive

from .base import PreparedBuilder, PreparedConfig
from .cardiomegaly import CxrCardiomegaly
from .siim import SiimAcrPneumothorax

DATASETS: dict[str, type[PreparedBuilder]] = {
    SiimAcrPneumothorax.name: SiimAcrPneumothorax,
    CxrCardiomegaly.name: CxrCardiomegaly,
}


def builder_class(dataset: str) -> type[PreparedBuilder]:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise ValueError(f"dataset {dataset!r} unknown; expected one of {sorted(DATASETS)}") from None


def _options(config: PreparedConfig) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if f.name not in ("name", "description", "version", "release_notes", "supported_versions", "tags")}


def get_builder(dataset: str, *, config: str | PreparedConfig | dict = "default",
                data_dir: str | os.PathLike | None = None, **builder_options) -> PreparedBuilder:
    """The builder of ``dataset`` for ``config``: a config name ("default", "synthetic"), a ``PreparedConfig``,
    or a dict of options for ``make_config`` (e.g. ``{"synthetic": True, "split_seed": 3}``).

    ``builder_options`` are ``workers``, ``on_error``, ``keep_decoded`` and ``progress`` (see
    ``PreparedBuilder``); ``data_dir`` defaults to TFDS's (``$TFDS_DATA_DIR`` or ~/tensorflow_datasets).
    """
    cls = builder_class(dataset)
    if isinstance(config, dict):
        config = cls.make_config(**config)
    if isinstance(config, PreparedConfig) and config.name in cls.builder_configs:
        # TFDS accepts only its own object under a registered name
        if _options(config) != _options(cls.builder_configs[config.name]):
            raise ValueError(f"config {config.name!r} has options that differ from the registered {config.name!r}; "
                             f"build it with {cls.__name__}.make_config(...) to get a name of its own")
        config = config.name
    return cls(config=config, data_dir=None if data_dir is None else os.fspath(data_dir), **builder_options)


def prepare(dataset: str, *, config: str | PreparedConfig | dict = "default",
            data_dir: str | os.PathLike | None = None, manual_dir: str | os.PathLike | None = None,
            **builder_options) -> PreparedBuilder:
    """Prepare the dataset unless it already is, and return its builder (``builder.as_data_source(split)``).

    ``manual_dir`` holds the original files (see the builder's ``MANUAL_DOWNLOAD_INSTRUCTIONS``); synthetic
    configs need none. Nothing is downloaded. A prepared dataset is never rebuilt: delete its folder
    (``builder.data_path``) to prepare it again from changed files.
    """
    builder = get_builder(dataset, config=config, data_dir=data_dir, **builder_options)
    # one preparation at a time per dataset variant; a process that waited finds it prepared. Not in a spawned
    # child: there a call is a script without a __main__ guard re-run by a decoding worker, which must fail (and
    # be reported by the parent) rather than wait for the parent's lock forever.
    # (while a spawned child re-imports the main module, parent_process() is not set yet; _inheriting is)
    in_child = (multiprocessing.parent_process() is not None
                or getattr(multiprocessing.current_process(), "_inheriting", False))
    lock = (contextlib.nullcontext() if in_child else
            exclusive(Path(builder.data_path).parent / ".prepare.lock", f"preparing {builder.name}"))
    with lock:
        if not (Path(builder.data_path) / "dataset_info.json").exists():
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
                manual_dir=None if manual_dir is None else os.fspath(manual_dir), try_download_gcs=False))
        builder = get_builder(dataset, config=config, data_dir=data_dir, **builder_options)
    return builder
