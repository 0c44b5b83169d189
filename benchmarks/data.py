"""Read + preprocess throughput for SIIM-style DICOMs, per core and with several worker processes.

Use it to size CPUs against a GPU's embedding rate: if one encoder embeds E images/s on your GPU, you need
about E / (images/s per worker) reading workers to keep it fed.

The files are what Kaggle ships: 1024 x 1024, 8-bit MONOCHROME2, JPEG Baseline (written by
``jaxprobe.data.synth``). "jaxprobe" is ``read_image`` + ``preprocess`` for each encoder's spec; the competitor,
run side by side in the same process on the same files, is the usual recipe: ``pydicom.dcmread(...).pixel_array``
-> PIL RGB -> the model's own processor (transformers' default torchvision-backed image processors, open_clip's
eval transform), with torch limited to one thread so that both sides use one core. It runs twice: with the JPEG
decoder pydicom picks by default and with Pillow's pinned, as jaxprobe pins it; most of the difference from the
first is the decoder.

    python benchmarks/data.py            # 64 images, workers 1..cores
    python benchmarks/data.py --quick    # 16 images, a few seconds
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxprobe.data.images import read_image  # noqa: E402
from jaxprobe.data.synth import make_siim  # noqa: E402
from jaxprobe.data.transforms import preprocess  # noqa: E402
from jaxprobe.encoders.spec import EncoderSpec  # noqa: E402

SPECS = {
    "rad_dino": EncoderSpec("dinov2", 518, 14, (0.5307,) * 3, (0.2583,) * 3, "shortest_edge_center_crop", 768, 768),
    "chexagent": EncoderSpec("siglip", 512, 16, (0.5,) * 3, (0.5,) * 3, "direct", 1024, 1024),
    "biomedclip": EncoderSpec("timm_vit", 224, 16, (0.48145466, 0.4578275, 0.40821073),
                              (0.26862954, 0.26130258, 0.27577711), "shortest_edge_center_crop", 512, 768),
}


def competitor(name: str, plugin: str = ""):
    import open_clip
    import pydicom
    import torch
    from PIL import Image
    from transformers import BitImageProcessor, SiglipImageProcessor

    torch.set_num_threads(1)
    spec = SPECS[name]
    if name == "rad_dino":
        processor = BitImageProcessor(size={"shortest_edge": 518}, crop_size={"height": 518, "width": 518},
                                      image_mean=list(spec.mean), image_std=list(spec.std))
        run = lambda pil: processor(pil, return_tensors="np")["pixel_values"]  # noqa: E731
    elif name == "chexagent":
        processor = SiglipImageProcessor(size={"height": 512, "width": 512})
        run = lambda pil: processor(pil, return_tensors="np")["pixel_values"]  # noqa: E731
    else:
        run = open_clip.image_transform(224, is_train=False, mean=spec.mean, std=spec.std)

    def load(path):
        ds = pydicom.dcmread(path)
        if plugin:
            ds.pixel_array_options(decoding_plugin=plugin)
        return run(Image.fromarray(ds.pixel_array).convert("RGB"))

    return load


def ours(name: str):
    spec = SPECS[name]
    return lambda path: preprocess(read_image(path), spec)


def rate(function, paths, repeats: int) -> float:
    function(paths[0])  # warm caches and lazy imports
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            function(path)
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


def _worker_load(args):
    path, name = args
    return preprocess(read_image(path), SPECS[name]).shape


def pool_rate(paths, name: str, workers: int, rounds: int) -> float:
    jobs = [(p, name) for p in paths] * rounds
    with mp.get_context("fork").Pool(workers) as pool:
        pool.map(_worker_load, jobs[:workers])  # start-up outside the clock
        start = time.perf_counter()
        for _ in pool.imap_unordered(_worker_load, jobs, chunksize=4):
            pass
        return len(jobs) / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 images, one repeat")
    parser.add_argument("--n", type=int, default=None, help="number of DICOMs (default 64, quick 16)")
    parser.add_argument("--workers", type=int, nargs="*", default=None, help="worker counts (default 1..cores)")
    args = parser.parse_args(argv)
    n = args.n or (16 if args.quick else 64)
    repeats = 1 if args.quick else 3
    cores = os.cpu_count() or 1
    workers = args.workers or sorted({1, 2, cores} if cores <= 4 else {1, 2, 4, cores})
    with tempfile.TemporaryDirectory() as tmp:
        root, _ = make_siim(tmp, n=n, seed=0, size=1024, sixteen_bit_fraction=0.0)
        paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".dcm"))
        print(f"{n} SIIM-style DICOMs, 1024x1024 8-bit JPEG Baseline; {cores} CPU cores; best of {repeats}")
        print("img/s on one core; 'default' lets pydicom pick the JPEG decoder (pylibjpeg when installed),")
        print("'pillow' pins Pillow's, as jaxprobe does")
        print(f"{'encoder':<11} {'jaxprobe':>9} {'processor (default)':>20} {'ratio':>6} {'processor (pillow)':>19} {'ratio':>6}")
        for name in SPECS:
            mine = rate(ours(name), paths, repeats)
            theirs = rate(competitor(name), paths, repeats)
            same_decoder = rate(competitor(name, "pillow"), paths, repeats)
            print(f"{name:<11} {mine:>9.1f} {theirs:>20.1f} {mine / theirs:>6.2f} {same_decoder:>19.1f} "
                  f"{mine / same_decoder:>6.2f}")
        print("read + preprocess with worker processes (rad_dino spec):")
        for w in workers:
            total = pool_rate(paths, "rad_dino", w, rounds=1 if args.quick else 2)
            print(f"  {w} worker(s): {total:7.1f} img/s total, {total / w:6.1f} img/s per worker")


if __name__ == "__main__":
    main()
