"""Prepare a data set once as a TFDS dataset (decoded images, masks, labels, patient-level splits).

    python -m jaxprobe.data.prepare --dataset siim_acr_pneumothorax --manual-dir /data/siim --data-dir /data/tfds
    python -m jaxprobe.data.prepare --dataset cxr_cardiomegaly --manual-dir /data/nih --data-dir /data/tfds
    python -m jaxprobe.data.prepare --dataset siim_acr_pneumothorax --synthetic --data-dir /tmp/tfds   # offline demo

Images are decoded by worker processes with a progress bar; an interrupted run picks up where it stopped when
run again with the same options. Bad files stop the run naming the file (``--on-error raise``, the default) or
are left out (``--on-error skip``); either way everything not in the dataset is listed in its left_out.csv.
A dataset that is already prepared is reused, not rebuilt.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..errors import ConfigError, guarded


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jaxprobe.data.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, choices=["siim_acr_pneumothorax", "cxr_cardiomegaly"])
    parser.add_argument("--manual-dir", help="folder with the original files (see --instructions)")
    parser.add_argument("--data-dir",
                        help="where TFDS datasets live (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
    parser.add_argument("--synthetic", action="store_true", help="build from synthetic phantoms instead (offline)")
    parser.add_argument("--synthetic-n", type=int, help="phantoms to generate (default 60)")
    parser.add_argument("--synthetic-size", type=int, help="phantom rows (default 256)")
    parser.add_argument("--synthetic-seed", type=int, help="phantom generator seed (default 0)")
    parser.add_argument("--split-seed", type=int, help="seed of the patient permutation (default 0)")
    parser.add_argument("--split-fractions", type=float, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                        help="patient fractions (default 0.72 0.08 0.20)")
    parser.add_argument("--split-file", help="CSV with image_id and split columns; replaces the seeded split")
    parser.add_argument("--min-dice", type=float, help="cxr_cardiomegaly: CheXmask Dice RCA (Mean) cut (default 0.7)")
    parser.add_argument("--workers", type=int, help="decoding processes (default: all CPUs; 0 = in this process)")
    parser.add_argument("--on-error", choices=["raise", "skip"], default="raise")
    parser.add_argument("--keep-decoded", action="store_true",
                        help="keep the decode cache, to build other split variants without decoding again")
    parser.add_argument("--instructions", action="store_true", help="print where to put the original files and exit")
    return parser.parse_args(argv)


def config_options(args: argparse.Namespace) -> dict:
    options = {"synthetic": args.synthetic}
    for name in ("synthetic_n", "synthetic_size", "synthetic_seed", "split_seed", "split_fractions", "split_file",
                 "min_dice"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return options


def main(argv=None) -> int:
    return guarded(lambda: _main(argv))


def _main(argv) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from . import tfds as prepared  # imports tensorflow-datasets, only needed here

    cls = prepared.builder_class(args.dataset)
    if args.instructions:
        print(cls.MANUAL_DOWNLOAD_INSTRUCTIONS)
        return 0
    if args.min_dice is not None and args.dataset != "cxr_cardiomegaly":
        raise ConfigError("--min-dice applies to cxr_cardiomegaly only")
    if not args.synthetic and args.manual_dir is None:
        raise ConfigError(f"--manual-dir is required (or --synthetic); put there:{cls.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    if not args.synthetic and not os.path.isdir(args.manual_dir):
        raise ConfigError(f"--manual-dir {args.manual_dir} is not a folder; put there:{cls.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    builder = prepared.prepare(args.dataset, config=config_options(args), data_dir=args.data_dir,
                               manual_dir=args.manual_dir, workers=args.workers, on_error=args.on_error,
                               keep_decoded=args.keep_decoded)
    meta = builder.info.metadata
    print(f"dataset: {builder.data_path}")
    print(f"config: {builder.builder_config.name} ({builder.builder_config.description})")
    for split, counts in meta["counts"].items():
        print(f"  {split:<5} {counts['images']:>7} images {counts['patients']:>7} patients "
              f"{counts['positives']:>7} positive")
    print(f"left out: {meta['left_out']} (listed in {builder.data_path / meta['left_out_file']})")
    print(f"read it: tfds.builder_from_directory('{builder.data_path}').as_data_source('train')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
