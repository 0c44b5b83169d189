"""Reading prepared (TFDS ArrayRecord) examples vs decoding the original DICOMs, side by side; size on disk.

The files are what Kaggle ships for SIIM-ACR: 1024 x 1024, 8-bit MONOCHROME2, JPEG Baseline (written by
``jaxprobe.data.synth``; ``--sixteen-bit`` writes uncompressed 12-bit MONOCHROME1 films with a window instead,
as modalities do). They are prepared once with the ``siim_acr_pneumothorax`` builder, then read in the same
process, one side after the other, in the same order:

* "dicom": ``read_image(path)`` (pydicom, Pillow's JPEG decoder, VOI and scaling to 8 bits), what every
  encoder and rerun pays without a prepared dataset;
* "prepared": ``data_source[i]["image"]`` (ArrayRecord read with its zstd inflate, proto parse), the same
  uint8 array;
* "zlib": the same images in a copy whose feature is ``Tensor(encoding=ZLIB)`` (the alternative the
  builders do not use), to show what that choice would cost.

Both are also timed followed by one encoder's preprocessing (RAD-DINO: 518 short side, centre crop,
normalise), which is what extraction does per image, and through a thread pool as ``extract`` loads images.

    python benchmarks/prepared.py            # 64 images, best of 3
    python benchmarks/prepared.py --quick    # 16 images, one repeat
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow_datasets as tfds

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxprobe.data import tfds as prepared  # noqa: E402
from jaxprobe.data.images import read_image  # noqa: E402
from jaxprobe.data.synth import make_siim  # noqa: E402
from jaxprobe.data.tfds.decoding import default_workers  # noqa: E402
from jaxprobe.data.transforms import preprocess  # noqa: E402
from jaxprobe.encoders.spec import EncoderSpec  # noqa: E402

RAD_DINO = EncoderSpec("dinov2", 518, 14, (0.5307,) * 3, (0.2583,) * 3, "shortest_edge_center_crop", 768, 768)


class ZlibCopy(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """The prepared images again, stored with the stock zlib-encoded Tensor feature."""

    VERSION = tfds.core.Version("1.0.0")
    code_path = prepared.PreparedBuilder.__dict__["code_path"]  # the same TFDS 4.9.10 workaround

    def __init__(self, images, **kwargs):
        self._images = images
        super().__init__(file_format="array_record", **kwargs)

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, disable_shuffling=True, features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(None, None), dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB)}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i, image in enumerate(self._images):
            yield i, {"image": image}


def best_rate(function, count: int, repeats: int, threads: int = 1) -> float:
    """Images per second of ``function(i)`` for i in range(count), best of ``repeats`` passes."""
    function(0)  # warm caches, open readers
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        if threads == 1:
            for i in range(count):
                function(i)
        else:
            with ThreadPoolExecutor(threads) as pool:
                for _ in pool.map(function, range(count)):
                    pass
        best = min(best, time.perf_counter() - start)
    return count / best


def shard_bytes(folder) -> int:
    return sum(os.path.getsize(p) for p in folder.iterdir() if ".array_record-" in p.name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 images, one repeat")
    parser.add_argument("--n", type=int, default=None, help="number of DICOMs (default 64, quick 16)")
    parser.add_argument("--sixteen-bit", action="store_true", help="uncompressed 12-bit MONOCHROME1 DICOMs")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes while preparing (default: CPUs)")
    args = parser.parse_args(argv)
    n = args.n or (16 if args.quick else 64)
    repeats = 1 if args.quick else 3
    cores = default_workers()
    workers = cores if args.workers is None else args.workers
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root, _ = make_siim(tmp, n=n, seed=0, size=1024, sixteen_bit_fraction=1.0 if args.sixteen_bit else 0.0)
        start = time.perf_counter()
        builder = prepared.prepare("siim_acr_pneumothorax", config="default", data_dir=os.path.join(tmp, "tfds"),
                                   manual_dir=root, workers=workers, progress=False)
        prepare_s = time.perf_counter() - start

        sources = builder.as_data_source()
        rows = [(split, r.index, r.source_path) for split, split_rows in prepared.example_index(builder).items()
                for r in split_rows]
        paths = [path for _, _, path in rows]
        order = [(sources[split], i) for split, i, _ in rows]
        images = [source[i]["image"] for source, i in order]
        for image, path in zip(images, paths):  # every side delivers the same pixels
            assert np.array_equal(image, read_image(path))
        zlib_builder = ZlibCopy(images, data_dir=os.path.join(tmp, "zlib"))
        zlib_builder.download_and_prepare()
        zlib_source = zlib_builder.as_data_source("train")
        assert all(np.array_equal(zlib_source[i]["image"], image) for i, image in enumerate(images))
        del images

        kind = "uncompressed 12-bit MONOCHROME1, windowed" if args.sixteen_bit else "8-bit JPEG Baseline"
        print(f"{n} SIIM-style DICOMs, 1024x1024 {kind}; {cores} CPU core(s); best of {repeats}")
        print(f"prepare: {prepare_s:.1f} s with {workers} decoding process(es), {n / prepare_s:.1f} img/s "
              "(includes starting the processes)")
        print(f"size on disk per image (KiB): DICOM {sum(map(os.path.getsize, paths)) / n / 1024:.0f}, "
              f"prepared {shard_bytes(builder.data_path) / n / 1024:.0f} (raw bytes, ArrayRecord zstd; with the "
              f"masks), zlib {shard_bytes(zlib_builder.data_path) / n / 1024:.0f} (image only), uncompressed 1024")

        def dicom(i):
            return read_image(paths[i])

        def from_prepared(i):
            return order[i][0][order[i][1]]["image"]

        def from_zlib(i):
            return zlib_source[i]["image"]

        print(f"{'img/s':<34} {'threads':>7} {'dicom':>7} {'prepared':>9} {'ratio':>6} {'zlib':>7} {'ratio':>6}")
        for label, post in (("read image", None), ("read + preprocess (rad_dino 518)", RAD_DINO)):
            for threads in sorted({1, max(2, cores)}):
                rates = []
                for read in (dicom, from_prepared, from_zlib):
                    function = read if post is None else (lambda i, read=read: preprocess(read(i), post))
                    rates.append(best_rate(function, n, repeats, threads))
                print(f"{label:<34} {threads:>7} {rates[0]:>7.1f} {rates[1]:>9.1f} {rates[1] / rates[0]:>6.2f} "
                      f"{rates[2]:>7.1f} {rates[2] / rates[0]:>6.2f}")


if __name__ == "__main__":
    main()
