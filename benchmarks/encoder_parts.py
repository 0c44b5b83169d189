"""Where an encoder's time goes: each part of one transformer block, JAX (as jaxprobe's encoders compute it) against
PyTorch (as the reference models compute it), same shapes, same machine, same threads, side by side.

    python benchmarks/encoder_parts.py                       # RAD-DINO's block at 518 px, batch 4
    python benchmarks/encoder_parts.py --tokens 1025 --width 1024 --mlp 4096 --heads 16   # CheXagent's
    python benchmarks/encoder_parts.py --cpu-kernels xla     # the JAX side on XLA's own code, no native kernels
    python benchmarks/encoder_parts.py --cpu-kernels xla --xla-flags=--xla_cpu_use_onednn=true

With ``--xla-flags`` the JAX side is re-run in a fresh process under each flag set (XLA reads XLA_FLAGS once),
so each option's effect is measured on its own. Per-block totals weight each part by how often a block runs it
(the q, k and v projections, the output projection, one attention, one MLP, two LayerNorms); multiply by the
depth for the encoder. Each GEMM-bearing part also shows the FLOP/s it reaches, and the last line the rate of one
large square GEMM through MKL on this machine: the least time the block's products can take in either framework.
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
    d, m, h = args.width, args.mlp, args.heads
    return dict(
        x=rng.normal(size=(args.batch, args.tokens, d)).astype(np.float32),
        w=(rng.normal(size=(d, d)) / np.sqrt(d)).astype(np.float32),
        w3=(rng.normal(size=(d, 3 * d)) / np.sqrt(d)).astype(np.float32),
        b=rng.normal(size=(3 * d,)).astype(np.float32),
        w1=(rng.normal(size=(d, m)) / np.sqrt(d)).astype(np.float32),
        b1=rng.normal(size=(m,)).astype(np.float32),
        w2=(rng.normal(size=(m, d)) / np.sqrt(m)).astype(np.float32),
        hidden=rng.normal(size=(args.batch, args.tokens, m)).astype(np.float32),
        qkv=rng.normal(size=(args.batch, args.tokens, 3, h, d // h)).astype(np.float32),
    )


# part name -> how many times one block runs it; the GEMM FLOPs of one run
PARTS = {"q, k, v projections": 1, "out projection": 1, "attention": 1, "MLP fc1 + GELU (erf)": 1, "MLP fc2": 1,
         "LayerNorm": 2}


def gemm_flops(args) -> dict:
    n, d, m, t = args.batch * args.tokens, args.width, args.mlp, args.tokens
    return {"q, k, v projections": 2 * n * d * 3 * d, "out projection": 2 * n * d * d,
            "attention": 4 * args.batch * t * t * d, "MLP fc1 + GELU (erf)": 2 * n * d * m, "MLP fc2": 2 * n * m * d,
            "LayerNorm": 0}


def jax_times(args) -> dict:
    """Each part as jaxprobe's encoders compute it on this host: the native CPU kernels where ``cpu_kernels``
    enables them (q, k and v as one GEMM read in place by the attention; GELU applied by the fc1 kernel), XLA's
    code otherwise (three GEMMs; the attention of ``transformer.attention``; GELU as its own pass)."""
    import jax
    import jax.numpy as jnp

    from jaxprobe.encoders import cpu_kernels
    from jaxprobe.encoders.transformer import activate, attention

    a = {k: jnp.asarray(v) for k, v in _inputs(args).items()}
    d = args.width
    mean = lambda x: x.mean(-1, keepdims=True)  # noqa: E731
    if cpu_kernels.enabled(jnp.float32):
        fns = {
            "q, k, v projections": (lambda x, w, bias: cpu_kernels.dense(x, w, bias), (a["x"], a["w3"], a["b"])),
            "out projection": (lambda x, w, bias: cpu_kernels.dense(x, w, bias), (a["x"], a["w"], a["b"][:d])),
            "attention": (cpu_kernels.packed_attention, (a["qkv"],)),
            "MLP fc1 + GELU (erf)": (lambda x, w, bias: cpu_kernels.dense(x, w, bias, "gelu"),
                                     (a["x"], a["w1"], a["b1"])),
            "MLP fc2": (lambda x, w, bias: cpu_kernels.dense(x, w, bias), (a["hidden"], a["w2"], a["b"][:d])),
        }
    else:
        fns = {
            "q, k, v projections": (lambda x, w, bias: [x @ w[:, i * d:(i + 1) * d] + bias[i * d:(i + 1) * d]
                                                        for i in range(3)], (a["x"], a["w3"], a["b"])),
            "out projection": (lambda x, w, bias: x @ w + bias, (a["x"], a["w"], a["b"][:d])),
            "attention": (lambda qkv: attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]), (a["qkv"],)),
            "MLP fc1 + GELU (erf)": (lambda x, w, bias: activate(x @ w + bias, "gelu"), (a["x"], a["w1"], a["b1"])),
            "MLP fc2": (lambda x, w, bias: x @ w + bias, (a["hidden"], a["w2"], a["b"][:d])),
        }
    fns["LayerNorm"] = (lambda x: (x - mean(x)) / jnp.sqrt(mean(jnp.square(x - mean(x))) + 1e-6), (a["x"],))
    out = {}
    for name, (fn, args_) in fns.items():
        jitted = jax.jit(fn)
        out[name] = _best(lambda: jax.block_until_ready(jitted(*args_)), args.repeats)
    return out


def torch_times(args) -> dict:
    """Each part as transformers' Dinov2Layer computes it: three nn.Linear for q, k and v, sdpa, GELU after fc1."""
    import torch
    import torch.nn.functional as F

    t = {k: torch.from_numpy(v) for k, v in _inputs(args).items()}
    d = args.width
    ws = [t["w3"][:, i * d:(i + 1) * d].T.contiguous() for i in range(3)]  # nn.Linear keeps [out, in]
    w, w1, w2 = t["w"].T.contiguous(), t["w1"].T.contiguous(), t["w2"].T.contiguous()
    bs = [t["b"][i * d:(i + 1) * d] for i in range(3)]
    q, k, v = (t["qkv"][:, :, i].permute(0, 2, 1, 3).contiguous() for i in range(3))
    fns = {
        "q, k, v projections": lambda: [F.linear(t["x"], ws[i], bs[i]) for i in range(3)],
        "out projection": lambda: F.linear(t["x"], w, bs[0]),
        "attention": lambda: F.scaled_dot_product_attention(q, k, v),
        "MLP fc1 + GELU (erf)": lambda: F.gelu(F.linear(t["x"], w1, t["b1"])),
        "MLP fc2": lambda: F.linear(t["hidden"], w2, bs[0]),
        "LayerNorm": lambda: F.layer_norm(t["x"], (args.width,)),
    }
    with torch.inference_mode():
        return {name: _best(fn, args.repeats) for name, fn in fns.items()}


def gemm_ceiling(repeats: int) -> float:
    """FLOP/s of one large square float32 GEMM through PyTorch's MKL on all its threads: the rate a block's GEMMs
    could reach at best on this machine, in either framework."""
    import torch

    n = 3072
    x, y = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / _best(lambda: torch.mm(x, y), repeats)


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
    ap.add_argument("--cpu-kernels", choices=("auto", "native", "xla"), default=None,
                    help="JAXPROBE_CPU_KERNELS for the JAX side (default: as set, else auto)")
    ap.add_argument("--jax-only-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cpu_kernels:
        os.environ["JAXPROBE_CPU_KERNELS"] = args.cpu_kernels
    if args.jax_only_json:
        print(json.dumps(jax_times(args)))
        return

    import jax
    import torch

    from jaxprobe import hostmem
    from jaxprobe.encoders import cpu_kernels

    memory = hostmem.apply()  # as `python -m jaxprobe.embed` runs the encoders
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} | torch {torch.__version__} "
          f"({torch.get_num_threads()} threads) | batch {args.batch}, {args.tokens} tokens, width {args.width}, "
          f"MLP {args.mlp}, {args.heads} heads | best of {args.repeats}\n{memory}\n{cpu_kernels.describe()}")
    jt, tt = jax_times(args), torch_times(args)
    flops, ceiling = gemm_flops(args), gemm_ceiling(args.repeats)
    print(f"{'part':<22} {'x/block':>7} {'jax ms':>8} {'torch ms':>9} {'jax/torch speed':>16} "
          f"{'jax GFLOP/s':>12} {'torch GFLOP/s':>14}")
    for name, count in PARTS.items():
        rates = (f"{flops[name] / jt[name] / 1e9:>12.0f} {flops[name] / tt[name] / 1e9:>14.0f}" if flops[name]
                 else "")
        print(f"{name:<22} {count:>7} {jt[name] * 1e3:>8.1f} {tt[name] * 1e3:>9.1f} {tt[name] / jt[name]:>15.2f}x "
              f"{rates}")
    jb = sum(jt[n] * c for n, c in PARTS.items())
    tb = sum(tt[n] * c for n, c in PARTS.items())
    print(f"{'one block':<22} {'':>7} {jb * 1e3:>8.1f} {tb * 1e3:>9.1f} {tb / jb:>15.2f}x")
    least = sum(flops[n] * c for n, c in PARTS.items()) / ceiling
    print(f"GEMM ceiling: a {3072}^3 float32 GEMM through PyTorch's MKL runs at {ceiling / 1e9:.0f} GFLOP/s; the "
          f"block's {sum(flops[n] * c for n, c in PARTS.items()) / 1e9:.1f} GFLOP of products need {least * 1e3:.0f} ms "
          f"at that rate, {least / tb:.0%} of PyTorch's block and {least / jb:.0%} of JAX's")
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
