"""A small deterministic extraction job, run in subprocesses by test_embed.py (kill/resume, devices, processes).

    python tests/embed_worker.py ROOT [--n N] [--delay S] [--distributed PID NPROC PORT]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZE = 32  # 2 x 2 patch grid with the 16-pixel patches of the timm family


def tiny_encoder():
    from jaxprobe import encoders

    return encoders.load("biomedclip", width=32, depth=1, proj_dim=16, input_size=SIZE, seed=3)


def make_load_fn(delay: float = 0.0):
    def load(i: int) -> dict:
        if delay:
            time.sleep(delay)
        rng = np.random.default_rng(1000 + i)
        mask = rng.random((SIZE, SIZE)) > 0.7
        return {"pixels": rng.standard_normal((SIZE, SIZE, 3)).astype(np.float32), "mask": mask}
    return load


def ids(n: int) -> list[str]:
    return [f"img{i:05d}" for i in range(n)]


def run(root: str, n: int, delay: float = 0.0, batch_size: int = 8, chunk_size: int = 16):
    from jaxprobe.embed import extract

    return extract(tiny_encoder(), ids(n), make_load_fn(delay), root, name="tiny", batch_size=batch_size,
                   chunk_size=chunk_size, workers=2, mask_size=SIZE, targets={"label": np.arange(n) % 2},
                   progress=False)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--distributed", nargs=3, type=int, metavar=("PID", "NPROC", "PORT"))
    a = ap.parse_args()
    if a.distributed:
        import jax

        pid, nproc, port = a.distributed
        jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=nproc, process_id=pid)
    store = run(a.root, a.n, a.delay)
    print("DONE", store.path, flush=True)
