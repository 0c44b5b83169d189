"""The NIH + CheXmask join on a synthetic CheXmask CSV the size of CheXmask's ChestX-Ray8 table (112,120 rows of
1024 x 1024 heart and lung RLE masks), against the way it was done before: drawing the three masks of every row
and measuring the CTR on them (about 12 ms a row).

Every row's masks are the RLE of real-sized phantom masks (jaxprobe.data.synth), so the strings are as long as
CheXmask's; the rows differ in their image id. The manifest names every row's image, all pointing at one
1024 x 1024 PNG (the join reads each image's size from its header).

* jaxprobe: ``cardiomegaly_records`` (streams the CSV, keeps rows whose images are in the manifest, reads each
  structure's first and last column from its runs);
* competitor: the same rows, each heart and lung mask drawn with ``decode_chexmask`` and the CTR measured on
  the masks with ``jaxprobe.data.ctr.ctr`` — timed on a sample of rows (it is the slow side) and given as rows/s.

    python benchmarks/chexmask_join.py                 # 112,120 rows (about 3 GB of CSV in a temporary folder)
    python benchmarks/chexmask_join.py --rows 20000
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxprobe.data import rle  # noqa: E402
from jaxprobe.data.cardiomegaly import cardiomegaly_records  # noqa: E402
from jaxprobe.data.ctr import ctr  # noqa: E402
from jaxprobe.data.synth import chest_phantom  # noqa: E402

HEADER = ["Image Index", "Dice RCA (Mean)", "Dice RCA (Max)", "Landmarks", "Left Lung", "Right Lung", "Heart",
          "Height", "Width"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=112_120)
    ap.add_argument("--sample", type=int, default=300, help="rows the drawing competitor is timed on")
    args = ap.parse_args()
    size = 1024
    rng = np.random.default_rng(0)
    phantoms = [chest_phantom(rng, size, size, target_ctr=rng.uniform(0.35, 0.65), pneumothorax=False)
                for _ in range(8)]
    texts = [(rle.encode_chexmask(p.left_lung), rle.encode_chexmask(p.right_lung), rle.encode_chexmask(p.heart))
             for p in phantoms]
    with tempfile.TemporaryDirectory() as tmp:
        Image.fromarray(np.zeros((size, size), np.uint8)).save(os.path.join(tmp, "image.png"))
        chexmask, manifest = os.path.join(tmp, "chexmask.csv"), os.path.join(tmp, "manifest.csv")
        t0 = time.perf_counter()
        with open(chexmask, "w", newline="") as f, open(manifest, "w", newline="") as m:
            out, man = csv.writer(f), csv.writer(m)
            out.writerow(HEADER)
            man.writerow(["image_id", "path", "patient_id", "cardiomegaly"])
            for i in range(args.rows):
                name = f"{i:08d}_000.png"
                out.writerow([name, "0.9", "0.95", "", *texts[i % len(texts)], size, size])
                man.writerow([name, "image.png", f"p{i}", i % 2])
        gigabytes = os.path.getsize(chexmask) / 1e9
        print(f"wrote {args.rows} rows, {gigabytes:.2f} GB of CSV in {time.perf_counter() - t0:.0f} s")

        t0 = time.perf_counter()
        records = cardiomegaly_records(manifest, chexmask)
        ours = time.perf_counter() - t0
        assert len(records) == args.rows

        sample = records[:args.sample]
        t0 = time.perf_counter()
        for r, (left, right, heart) in zip(sample, (texts[i % len(texts)] for i in range(len(sample)))):
            masks = [rle.decode_chexmask(t, size, size) for t in (heart, left, right)]
            value = ctr(*masks)
            assert abs(value - r.ctr) < 1e-12, (value, r.ctr)
        theirs = (time.perf_counter() - t0) / len(sample)
    print(f"jaxprobe join: {args.rows / ours:,.0f} rows/s ({ours:.1f} s for {args.rows} rows, CSV parsing, "
          "image headers and CTR included)")
    print(f"drawing the masks and measuring them: {1 / theirs:,.0f} rows/s ({1000 * theirs:.1f} ms a row; "
          f"{args.rows * theirs / 60:.1f} min for {args.rows} rows, CTR only)")
    print(f"ratio: {theirs * args.rows / ours:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
