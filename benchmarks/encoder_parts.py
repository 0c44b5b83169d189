"""Where an encoder's time goes: each part of one transformer block, JAX (as jaxprobe's encoders compute it) against
PyTorch (as the reference models compute it), same shapes, same machine, same threads, side by side.

    python benchmarks/encoder_parts.py                       # RAD-DINO's block at 518 px, batch 4
    python benchmarks/encoder_parts.py --tokens 1025 --width 1024 --mlp 4096 --heads 16   # CheXagent's
    python benchmarks/encoder_parts.py --xla-flags=--xla_cpu_use_onednn=true --xla-flags=--xla_cpu_use_xnnpack=true

With ``--xla-flags`` the JAX side is re-run in a fresh process under each flag set (XLA reads XLA_FLAGS once),
so each option's effect is measured on its own. Per-block totals weight each part by how often a block runs it
(four projections, one MLP, one attention, two LayerNorms); multiply by the depth for the encoder.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.encoders import timeit as _best  # noqa: E402  (best of `repeats` after one warm-up call)


def _inputs(args):
    rng = np.random.default_rng(0)
    n, d, m, h = args.batch * args.tokens, args.width, args.mlp, args.heads
    return dict(
        x=rng.normal(size=(n, d)).astype(np.float32),
        w=(rng.normal(size=(d, d)) / np.sqrt(d)).astype(np.float32),
        w1=(rng.normal(size=(d, m)) / np.sqrt(d)).astype(np.float32),
        w2=(rng.normal(size=(m, d)) / np.sqrt(m)).astype(np.float32),
        hidden=rng.normal(size=(n, m)).astype(np.float32),
        qkv=rng.normal(size=(3, args.batch, args.tokens, h, d // h)).astype(np.float32),
    )


# part name -> how many times one block runs it
PARTS = {"q/k/v/out projection": 4, "MLP fc1": 1, "MLP fc2": 1, "GELU (erf)": 1, "LayerNorm": 2, "attention": 1}


def jax_times(args) -> dict:
    import jax
    import jax.numpy as jnp

    from jaxprobe.encoders.transformer import activate, attention

    a = {k: jnp.asarray(v) for k, v in _inputs(args).items()}
    mean = lambda x: x.mean(-1, keepdims=True)  # noqa: E731
    fns = {
        "q/k/v/out projection": (lambda x, w: x @ w, (a["x"], a["w"])),
        "MLP fc1": (lambda x, w: x @ w, (a["x"], a["w1"])),
        "MLP fc2": (lambda x, w: x @ w, (a["hidden"], a["w2"])),
        "GELU (erf)": (lambda x: activate(x, "gelu"), (a["hidden"],)),
        "LayerNorm": (lambda x: (x - mean(x)) / jnp.sqrt(mean(jnp.square(x - mean(x))) + 1e-6), (a["x"],)),
        "attention": (attention, tuple(a["qkv"])),
    }
    out = {}
    for name, (fn, args_) in fns.items():
        jitted = jax.jit(fn)
        out[name] = _best(lambda: jax.block_until_ready(jitted(*args_)), args.repeats)
    return out


def torch_times(args) -> dict:
    import torch
    import torch.nn.functional as F

    t = {k: torch.from_numpy(v) for k, v in _inputs(args).items()}
    q, k, v = (x.permute(0, 2, 1, 3).contiguous() for x in t["qkv"])
    fns = {
        "q/k/v/out projection": lambda: t["x"] @ t["w"],
        "MLP fc1": lambda: t["x"] @ t["w1"],
        "MLP fc2": lambda: t["hidden"] @ t["w2"],
        "GELU (erf)": lambda: F.gelu(t["hidden"]),
        "LayerNorm": lambda: F.layer_norm(t["x"], (args.width,)),
        "attention": lambda: F.scaled_dot_product_attention(q, k, v),
    }
    with torch.inference_mode():
        return {name: _best(fn, args.repeats) for name, fn in fns.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=1370, help="tokens per image (RAD-DINO at 518 px: 1 + 37*37)")
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--mlp", type=int, default=3072)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--xla-flags", action="append", default=None,
                    help="also time the JAX side under this XLA_FLAGS value (repeatable; write --xla-flags=VALUE)")
    ap.add_argument("--jax-only-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.jax_only_json:
        print(json.dumps(jax_times(args)))
        return

    import jax
    import torch

    print(f"jax {jax.__version__} on {jax.devices()[0].platform} | torch {torch.__version__} "
          f"({torch.get_num_threads()} threads) | batch {args.batch}, {args.tokens} tokens, width {args.width}, "
          f"MLP {args.mlp}, {args.heads} heads | best of {args.repeats}")
    jt, tt = jax_times(args), torch_times(args)
    print(f"{'part':<22} {'x/block':>7} {'jax ms':>8} {'torch ms':>9} {'jax/torch speed':>16}")
    for name, count in PARTS.items():
        print(f"{name:<22} {count:>7} {jt[name] * 1e3:>8.1f} {tt[name] * 1e3:>9.1f} {tt[name] / jt[name]:>15.2f}x")
    jb = sum(jt[n] * c for n, c in PARTS.items())
    tb = sum(tt[n] * c for n, c in PARTS.items())
    print(f"{'one block':<22} {'':>7} {jb * 1e3:>8.1f} {tb * 1e3:>9.1f} {tb / jb:>15.2f}x")
    for flags in args.xla_flags or ():
        cmd = [sys.executable, __file__, "--jax-only-json", "--batch", str(args.batch), "--tokens", str(args.tokens),
               "--width", str(args.width), "--mlp", str(args.mlp), "--heads", str(args.heads),
               "--repeats", str(args.repeats)]
        done = subprocess.run(cmd, env={**os.environ, "XLA_FLAGS": flags}, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"XLA_FLAGS={flags}: failed: {done.stderr.strip().splitlines()[-1] if done.stderr else '?'}")
            continue
        ft = json.loads(done.stdout.strip().splitlines()[-1])
        fb = sum(ft[n] * c for n, c in PARTS.items())
        parts = ", ".join(f"{n} {jt[n] / ft[n]:.2f}x" for n in PARTS)
        print(f"XLA_FLAGS={flags}: one block {fb * 1e3:.1f} ms ({jb / fb:.2f}x the default; {parts})")


if __name__ == "__main__":
    main()
