"""Extraction throughput and peak memory: the store's chunked memmap writes against the usual list-and-stack loop.

    python benchmarks/embed.py            # N = 250 and 4N = 1000 synthetic SIIM DICOMs, reduced RAD-DINO-family encoder
    python benchmarks/embed.py --quick    # N = 130 and 520
    python benchmarks/embed.py --kill-resume 1000   # SIGKILL an extraction midway, resume it, compare with a fresh one
    python benchmarks/embed.py --full-size 16     # the three study encoders at full size: extraction images/s
                                                  # (decoding, forward and store writes overlapped) against the
                                                  # forward alone; float32 batch 4 on a CPU, bfloat16 batch 32 on
                                                  # an accelerator unless --dtype / --batch say otherwise

Each extraction runs in a fresh subprocess so that its peak RSS (ru_maxrss) is its own. The competitor keeps every
embedding in Python lists and saves once at the end, as most feature-extraction scripts do; its RSS grows with N,
the store's should not. Also printed: time spent decoding + preprocessing vs in the encoder, per image.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

ENCODER = dict(width=96, depth=2, num_heads=2)  # RAD-DINO family at 518 px: 37x37x96 patches, 263 KB/image


def child(mode: str, data: str, n: int, out: str) -> None:
    import numpy as np

    from jaxprobe import encoders
    from jaxprobe.data import siim_records
    from jaxprobe.data.loaders import record_loader
    from jaxprobe.embed.records import extract_records


    records = siim_records(os.path.join(data, "siim"), csv_path=os.path.join(data, "siim", "train-rle.csv"))[:n]
    enc = encoders.load("rad_dino", **ENCODER)
    t0 = time.perf_counter()
    if mode == "store":
        store = extract_records(enc, records, out, name="bench", mask="pneumothorax", batch_size=16, workers=2,
                                progress=False, log=lambda m: None)
        timing = store.meta.get("timing_s", {})
    else:  # the usual script: accumulate in lists, stack, save
        load = record_loader(records, enc.spec, "pneumothorax")
        gs, ps, ms = [], [], []
        for s in range(0, n, 16):
            items = [load(i) for i in range(s, min(n, s + 16))]
            g, p = enc.embed(np.stack([it["pixels"] for it in items]))
            gs.append(np.asarray(g))
            ps.append(np.asarray(p).astype(np.float16))
            ms.extend(it["mask"] for it in items)
        np.save(os.path.join(out, "global.npy"), np.concatenate(gs))
        np.save(os.path.join(out, "patches.npy"), np.concatenate(ps))
        np.save(os.path.join(out, "masks.npy"), np.stack(ms))
        timing = {}
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"wall": wall, "rss_mb": rss, "timing": timing}))


def kill_resume(n: int) -> None:
    """Extract n synthetic DICOMs in a subprocess, SIGKILL it midway, resume, and compare with a fresh store."""
    import signal
    import numpy as np

    from jaxprobe.data import make_synthetic
    from jaxprobe.embed import Store

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        make_synthetic(data, n=n, seed=0, size=256)
        killed, fresh = os.path.join(tmp, "killed"), os.path.join(tmp, "fresh")
        os.makedirs(killed)
        os.makedirs(fresh)
        cmd = [sys.executable, __file__, "--child", "store", data, str(n)]
        proc = subprocess.Popen(cmd + [killed], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while len(list(Path(killed).glob("*/chunks/*.done"))) < 3:
            if proc.poll() is not None:
                raise SystemExit("extraction ended before it could be killed")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store_dir = next(Path(killed).iterdir())
        partial = Store.open(store_dir)
        print(f"killed after {partial.meta['n_chunks'] - len(partial.pending_chunks())} of "
              f"{partial.meta['n_chunks']} chunks; resuming")
        subprocess.run(cmd + [killed], check=True, capture_output=True)
        subprocess.run(cmd + [fresh], check=True, capture_output=True)
        a, b = Store.open(store_dir), Store.open(next(Path(fresh).iterdir()))
        same = all(np.array_equal(a.array(k), b.array(k)) for k in ("global", "patches", "masks"))
        print(f"resumed store complete: {a.complete}; identical to an uninterrupted extraction of {n} images: {same}")


def full_size(n: int, dtype: str | None, batch: int | None, names: list[str] | None = None) -> None:
    """Extraction images/s of each full-size study encoder (random weights) into a store, on the default device,
    against the encoder's forward alone on the same images already decoded (same batch size): the ratio says
    how much decoding, preprocessing and store writes cost once they overlap with the forward pass."""
    import jax
    import numpy as np

    from jaxprobe import encoders
    from jaxprobe.data import make_synthetic, siim_records
    from jaxprobe.data.loaders import record_loader
    from jaxprobe.embed.records import extract_records

    device = jax.devices()[0]
    cpu = device.platform == "cpu"
    dtype = dtype or ("float32" if cpu else "bfloat16")  # bfloat16 is emulated (slow) on most CPUs
    batch = batch or (4 if cpu else 32)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_synthetic(os.path.join(tmp, "data"), n=n, seed=0, size=512)
        records = siim_records(paths.siim_root, csv_path=paths.siim_csv)
        from jaxprobe.encoders import cpu_kernels

        print(f"{n} synthetic DICOMs (512x512), {len(jax.local_devices())} x {device.device_kind}, {dtype}, "
              f"batch {batch}, {os.cpu_count()} CPU cores\n{cpu_kernels.describe()}")
        print(f"{'encoder':<11} {'extraction img/s':>16} {'forward alone img/s':>20} {'ratio':>6} "
              f"{'decode ms/img (1 thread)':>25}  time inside the extraction")
        for name in names or encoders.registry.STUDY_NAMES:
            enc = encoders.load(name, dtype=dtype)
            load = record_loader(records, enc.spec)
            t0 = time.perf_counter()
            pixels = np.stack([load(i)["pixels"] for i in range(n)])
            decode = (time.perf_counter() - t0) / n
            jax.block_until_ready(enc.embed(pixels[:batch]))  # compile outside the timings
            t0 = time.perf_counter()
            for a in range(0, n, batch):
                chunk = pixels[a:a + batch]
                if len(chunk) < batch:  # the extraction pads a last partial batch the same way
                    chunk = np.concatenate([chunk, np.zeros((batch - len(chunk),) + chunk.shape[1:], chunk.dtype)])
                g, p = enc.embed(chunk)
                np.asarray(g), np.asarray(p)
            forward = time.perf_counter() - t0
            del pixels
            workers = min(8, os.cpu_count() or 1)
            extract_records(enc, records[:batch], os.path.join(tmp, "warm"), name=name, batch_size=batch,
                            workers=workers, progress=False, log=lambda m: None)  # the sharded input's compile
            lines = []
            t0 = time.perf_counter()
            extract_records(enc, records, os.path.join(tmp, "stores"), name=name, batch_size=batch,
                            workers=workers, progress=False, log=lines.append)
            dt = time.perf_counter() - t0
            inside = next((m.split(": ", 1)[1] for m in lines if m.startswith("embeddings: time in")), "?")
            print(f"{name:<11} {n / dt:16.2f} {n / forward:20.2f} {forward / dt:6.2f} {decode * 1e3:25.1f}  {inside}")


def shares(data: str, n: int) -> tuple[float, float]:
    """Seconds per image for decode+preprocess alone and for the encoder alone (batch 16)."""
    import numpy as np

    from jaxprobe import encoders
    from jaxprobe.data import siim_records
    from jaxprobe.data.loaders import record_loader

    records = siim_records(os.path.join(data, "siim"), csv_path=os.path.join(data, "siim", "train-rle.csv"))[:n]
    enc = encoders.load("rad_dino", **ENCODER)
    load = record_loader(records, enc.spec)
    t0 = time.perf_counter()
    pix = np.stack([load(i)["pixels"] for i in range(n)])
    t_dec = (time.perf_counter() - t0) / n
    enc.embed(pix[:16])[0].block_until_ready()
    t0 = time.perf_counter()
    for s in range(0, n - 15, 16):
        enc.embed(pix[s:s + 16])[0].block_until_ready()
    t_enc = (time.perf_counter() - t0) / (16 * (n // 16))
    return t_dec, t_enc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=250)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "DATA", "N", "OUT"))
    ap.add_argument("--kill-resume", type=int, metavar="N", help="kill/resume check with N images instead")
    ap.add_argument("--full-size", type=int, metavar="N", help="full-size encoders' extraction rate with N images")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), help="--full-size: default float32 on a CPU, "
                    "bfloat16 on an accelerator")
    ap.add_argument("--batch", type=int, help="--full-size: default 4 on a CPU, 32 on an accelerator")
    ap.add_argument("--encoders", help="--full-size: comma-separated registry names (default: the study's three)")
    args = ap.parse_args()
    if args.kill_resume:
        return kill_resume(args.kill_resume)
    if args.full_size:
        return full_size(args.full_size, args.dtype, args.batch, args.encoders.split(",") if args.encoders else None)
    if args.child:
        mode, data, n, out = args.child
        return child(mode, data, int(n), out)
    n = 130 if args.quick else args.n
    from jaxprobe.data import make_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        t0 = time.perf_counter()
        make_synthetic(data, n=4 * n, seed=0, size=256)
        print(f"synthetic set: {4 * n} SIIM-style DICOMs (256x256) in {time.perf_counter() - t0:.1f}s; encoder "
              f"RAD-DINO-family {ENCODER} at 518 px, batch 16")
        t_dec, t_enc = shares(data, min(64, n))
        print(f"per image: decode+preprocess {t_dec * 1e3:.1f} ms (1 thread), encoder {t_enc * 1e3:.1f} ms "
              f"-> decoding is {t_dec / (t_dec + t_enc):.0%} of serial time")
        print(f"{'method':<22} {'N':>5} {'img/s':>8} {'peak RSS MB':>12}")
        rows = {}
        for mode in ("store", "lists"):
            for count in (n, 4 * n):
                out = os.path.join(tmp, f"{mode}-{count}")
                os.makedirs(out)
                res = subprocess.run([sys.executable, __file__, "--child", mode, data, str(count), out],
                                     capture_output=True, text=True, check=True)
                r = json.loads(res.stdout.strip().splitlines()[-1])
                rows[mode, count] = r
                label = "jaxprobe store" if mode == "store" else "lists + np.save"
                print(f"{label:<22} {count:>5} {count / r['wall']:>8.1f} {r['rss_mb']:>12.0f}")
        for mode in ("store", "lists"):
            grow = rows[mode, 4 * n]["rss_mb"] - rows[mode, n]["rss_mb"]
            print(f"RSS growth from N to 4N, {mode}: {grow:+.0f} MB")
        ratio = (4 * n / rows["store", 4 * n]["wall"]) / (4 * n / rows["lists", 4 * n]["wall"])
        print(f"throughput ratio store / lists at 4N: {ratio:.2f}")


if __name__ == "__main__":
    main()
