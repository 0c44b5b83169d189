"""What both prepared datasets share: configs, features, patient-level splits, the build and its records.

A build turns the source records (``siim_records`` or ``cardiomegaly_records``) into one TFDS dataset in the
ArrayRecord format: the records are split by patient (seeded 72/8/20, or the user's split file), every image
is decoded once by worker processes (``decoding``), and each split is written in image-id order. Beside the
TFDS files, the dataset folder holds ``examples.csv`` (split, index, ids, label, CTR, source path of every
example, so tasks can select examples without reading images; it is also a split file ``read_split_file``
accepts) and ``left_out.csv`` (every image or label that is not in the dataset, and why). How the splits were
made (seed, fractions or split file, counts) is in the dataset's metadata (``builder.info.metadata``).
"""
from __future__ import annotations

import abc
import csv
import dataclasses
import hashlib
import inspect
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from ..errors import BadItems, OnError
from ..records import Record
from ..splits import SPLITS, resolve_splits, split_records
from ..synth import GENERATOR_VERSION
from .decoding import decode_all, default_workers, load_decoded, remove_decoded

log = logging.getLogger("jaxprobe.data")

INDEX_FILE = "examples.csv"
LEFT_OUT_FILE = "left_out.csv"
DEFAULT_FRACTIONS = (0.72, 0.08, 0.20)


@dataclasses.dataclass(eq=False)
class PreparedConfig(tfds.core.BuilderConfig):
    """One prepared variant: real or synthetic source, and how it is split.

    Every option that changes the data is here, so that different options get different folders; build one
    with ``make_config`` to get a name that spells out the options.
    """

    synthetic: bool = False  # phantoms from jaxprobe.data.synth instead of the manual download
    synthetic_n: int = 60
    synthetic_size: int = 256
    synthetic_seed: int = 0
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    split_file: str | None = None  # CSV with image_id and split columns; replaces the seeded split


_SHARED_SYNTHETIC = ("synthetic_n", "synthetic_size", "synthetic_seed")


def split_file_digest(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def config_name(config: PreparedConfig, defaults: PreparedConfig) -> str:
    """"default" / "synthetic", followed by every option that differs from the default, e.g. "synthetic-n24-seed3"."""
    parts = ["synthetic" if config.synthetic else "default"]
    if config.synthetic:
        for field, tag in (("synthetic_n", "n"), ("synthetic_size", "size"), ("synthetic_seed", "phantoms")):
            if getattr(config, field) != getattr(defaults, field):
                parts.append(f"{tag}{getattr(config, field)}")
    for field in dataclasses.fields(config):
        if field.name not in {f.name for f in dataclasses.fields(PreparedConfig)} and \
                getattr(config, field.name) != getattr(defaults, field.name):
            value = getattr(config, field.name)
            if isinstance(value, (tuple, list)):
                value = "_".join(str(v) for v in value) or "all"
            parts.append(f"{field.name.replace('_', '')}{value}")  # a builder's own options
    if config.split_file is not None:
        parts.append(f"splitfile{split_file_digest(config.split_file)[:12]}")
    else:
        if config.split_seed != defaults.split_seed:
            parts.append(f"seed{config.split_seed}")
        if tuple(config.split_fractions) != tuple(defaults.split_fractions):
            parts.append("f" + "_".join(f"{f:g}" for f in config.split_fractions))
    return "-".join(parts)


class PreparedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the prepared-dataset builders; subclasses say where records come from and which masks they have.

    Extra constructor options (not part of the data, so not in the config): ``workers`` decoding processes
    (default: all CPUs this process may use), ``on_error`` ("raise" or "skip", the data module's policy),
    ``keep_decoded`` (keep the decode cache after a successful build, to build other split variants of the
    same images without decoding again), ``progress`` (progress bars).
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "First release: decoded 8-bit images, masks, labels, patient-level splits.",
                     "1.1.0": "Synthetic variants from phantom generator version 2 (half of the SIIM films positive, "
                              "deeper pneumothoraces)."}
    CONFIG_CLASS = PreparedConfig
    SOURCE: str  # Record.source of the records
    LABEL_NAMES: tuple[str, str]  # label 0 and 1
    MASK_NAMES: tuple[str, ...]
    HAS_CTR = False
    HOMEPAGE = ""
    CITATION = ""

    def __init__(self, *, workers: int | None = None, on_error: OnError = "raise", keep_decoded: bool = False,
                 progress: bool = True, **kwargs):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self._workers = default_workers() if workers is None else int(workers)
        self._on_error = on_error
        self._keep_decoded = keep_decoded
        self._progress = progress
        self._decoded_files: dict[str, Path] = {}
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)

    @classmethod
    def make_config(cls, *, synthetic: bool = False, **options) -> PreparedConfig:
        """A config with the given options, named after the ones that differ from the defaults."""
        defaults = cls.CONFIG_CLASS(name="", synthetic=synthetic)
        unknown = set(options) - {f.name for f in dataclasses.fields(defaults)}
        if unknown:
            raise TypeError(f"{cls.name}: unknown config option(s) {sorted(unknown)}")
        if options.get("split_file") is not None:
            options["split_file"] = os.path.abspath(os.fspath(options["split_file"]))
        for key, value in options.items():  # tuples, as the dataclass defaults are (lists would never equal them)
            if isinstance(value, list):
                options[key] = tuple(value)
        if "split_fractions" in options:
            options["split_fractions"] = tuple(float(f) for f in options["split_fractions"])
        config = dataclasses.replace(defaults, synthetic=synthetic, **options)
        config.name = config_name(config, defaults)
        config.description = ("Synthetic phantoms (jaxprobe.data.synth), " if synthetic else "Manual download, ") + \
            (f"split by {config.split_file}" if config.split_file else
             f"patient-level split {'/'.join(f'{f:g}' for f in config.split_fractions)} seed {config.split_seed}")
        return config

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # TFDS 4.9.10 resolves a packaged builder's source file through importlib_resources, which it declares
        # only for Python < 3.9 (tensorflow/datasets#11212), so on 3.11 without it every build fails. Its own
        # fallback for unpackaged builders is the class's file, which is what it would find here anyway.
        return epath.Path(inspect.getfile(cls))

    def _info(self) -> tfds.core.DatasetInfo:
        # Raw bytes, not Encoding.ZLIB: ArrayRecord already compresses every record (TFDS writes zstd level 3),
        # and zstd inflates about twice as fast as zlib, which made zlib-encoded images slower to read than
        # decoding the JPEG DICOMs they came from (benchmarks/prepared.py). Image (not Tensor) would need
        # TensorFlow to encode.
        image = tfds.features.Tensor(
            shape=(None, None), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES,
            doc="decoded 8-bit grey image at native size, bright = dense (jaxprobe.data.read_image)")
        masks = tfds.features.FeaturesDict(
            {name: tfds.features.Tensor(shape=(None, None), dtype=np.bool_, encoding=tfds.features.Encoding.BYTES,
                                        doc=f"{name} mask, same shape as the image")
             for name in self.MASK_NAMES})
        features = {
            "image": image,
            "masks": masks,
            "label": tfds.features.ClassLabel(names=list(self.LABEL_NAMES)),
            "patient_id": tfds.features.Text(doc="the unit of the train/val/test split"),
            "image_id": tfds.features.Text(doc="unique within the source"),
            "source_path": tfds.features.Text(doc="the original file the image was decoded from"),
        }
        if self.HAS_CTR:
            features["ctr"] = tfds.features.Scalar(dtype=np.float32, doc="cardiothoracic ratio from the masks")
        return tfds.core.DatasetInfo(
            builder=self,
            description=(self.__doc__ or "").strip(),
            features=tfds.features.FeaturesDict(features),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
            metadata=tfds.core.MetadataDict(),
            # examples stay in image-id order within a split, the order examples.csv lists them in
            disable_shuffling=True,
        )

    @abc.abstractmethod
    def _source_records(self, dl_manager, skipped_file: str) -> tuple[list[Record], str]:
        """(records, where they were read from); items left out are listed in ``skipped_file``."""

    def _synthetic_dir(self, dl_manager, write) -> str:
        """Folder of this config's phantoms, written once (atomically) with ``write(folder)``."""
        c = self.builder_config
        extra = "".join(f"-{f.name}{getattr(c, f.name)}" for f in dataclasses.fields(c)
                        if f.name.startswith("synthetic_") and f.name not in _SHARED_SYNTHETIC)
        folder = Path(dl_manager.download_dir) / "jaxprobe_synthetic" / \
            f"{self.name}-v{GENERATOR_VERSION}-n{c.synthetic_n}-size{c.synthetic_size}-seed{c.synthetic_seed}{extra}"
        if not folder.exists():
            partial = folder.with_name(folder.name + f".partial{os.getpid()}")
            shutil.rmtree(partial, ignore_errors=True)
            write(str(partial))
            partial.rename(folder)
        return str(folder)

    def _split_generators(self, dl_manager):
        out_dir = Path(self.data_dir)  # the build's temporary folder, renamed to the dataset folder on success
        self._warn_about_abandoned_builds(out_dir)
        config = self.builder_config
        left_out = out_dir / LEFT_OUT_FILE
        records, origin = self._source_records(dl_manager, os.fspath(left_out))
        assignment = resolve_splits(records, split_file=config.split_file, fractions=config.split_fractions,
                                    seed=config.split_seed)
        decode_left_out = out_dir / "left_out.decoding.csv"
        bad = BadItems(self.SOURCE, self._on_error, decode_left_out)
        cache_dir = Path(dl_manager.download_dir) / "jaxprobe_decoded" / self.name
        decoded = decode_all(records, cache_dir, bad, workers=self._workers, progress=self._progress)
        bad.finish()
        _append_rows(left_out, decode_left_out)
        self._decoded_files = decoded
        by_split = split_records([r for r in records if r.image_id in decoded], assignment)
        _write_index(out_dir / INDEX_FILE, by_split)
        self.info.metadata.update(self._metadata(config, origin, by_split, left_out))
        empty = [s for s in SPLITS if not by_split[s]]
        if empty:
            log.warning("%s: split(s) %s have no images and are not written", self.name, empty)
        return {s: self._generate_examples(by_split[s], decoded) for s in SPLITS if by_split[s]}

    def _generate_examples(self, records: Sequence[Record], decoded: dict[str, Path]):
        for i, r in enumerate(records):
            payload = load_decoded(decoded[r.image_id])
            example = {"image": payload["image"], "masks": payload["masks"], "label": r.label,
                       "patient_id": r.patient_id, "image_id": r.image_id, "source_path": r.path}
            if self.HAS_CTR:
                example["ctr"] = np.float32(r.ctr)
            yield i, example

    def _post_download_and_prepare_hook(self) -> None:
        if not self._keep_decoded:
            remove_decoded(self._decoded_files)
        left_out = self.info.metadata["left_out"]
        if left_out:  # the build logged the list's temporary path; this is where it stays
            log.warning("%s: %d item(s) not in the dataset, listed in %s", self.name, left_out,
                        self.data_path / LEFT_OUT_FILE)

    def _metadata(self, config, origin: str, by_split: dict[str, list[Record]], left_out: Path) -> dict:
        if config.split_file:
            splits = {"method": "file", "file": config.split_file, "file_sha256": split_file_digest(config.split_file)}
        else:
            splits = {"method": "seeded patient permutation (jaxprobe.data.patient_splits)",
                      "seed": config.split_seed, "fractions": list(config.split_fractions)}
        with open(left_out, newline="") as f:
            n_left_out = sum(1 for _ in csv.reader(f)) - 1
        return {
            "jaxprobe_prepared_format": 1,
            "source": self.SOURCE,
            "origin": origin,
            "synthetic": ({"n": config.synthetic_n, "size": config.synthetic_size, "seed": config.synthetic_seed}
                          if config.synthetic else None),
            "splits": splits,
            "counts": {s: {"images": len(rs), "patients": len({r.patient_id for r in rs}),
                           "positives": sum(r.label for r in rs)} for s, rs in by_split.items()},
            "left_out": n_left_out,
            "left_out_file": LEFT_OUT_FILE,
            "index_file": INDEX_FILE,
            "read_options": "jaxprobe.data.read_image defaults (first VOI, nominal range, Pillow JPEG decoder)",
            "on_error": self._on_error,
        }

    def _warn_about_abandoned_builds(self, out_dir: Path) -> None:
        stale = [p for p in out_dir.parent.glob(f"incomplete.*_{self.version}") if p != out_dir]
        if stale:
            log.warning("%s: %d folder(s) left by interrupted builds, e.g. %s; delete them when no other build of "
                        "this dataset is running", self.name, len(stale), stale[0])


def _append_rows(target: Path, extra: Path) -> None:
    """Append extra's rows (without its header) to target, then delete extra: one left-out list per dataset."""
    if not extra.exists():
        return
    with open(extra, newline="") as f:
        rows = list(csv.reader(f))[1:]
    if not target.exists():
        shutil.move(os.fspath(extra), os.fspath(target))
        return
    with open(target, "a", newline="") as f:
        csv.writer(f).writerows(rows)
    extra.unlink()


def _write_index(path: Path, by_split: dict[str, list[Record]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "index", "image_id", "patient_id", "label", "ctr", "source_path"])
        for split in SPLITS:
            for i, r in enumerate(by_split[split]):
                writer.writerow([split, i, r.image_id, r.patient_id, r.label,
                                 "" if r.ctr is None else repr(float(np.float32(r.ctr))), r.path])
