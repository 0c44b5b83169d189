"""Images per second of each Flax encoder against its PyTorch reference, same machine, batch and precision.

    python benchmarks/encoders.py                 # all three at full size, float32, batch 4
    python benchmarks/encoders.py --quick         # batch 2, fewer repeats
    python benchmarks/encoders.py --bf16          # also bfloat16 (GPU): images/s and fraction of peak
    python benchmarks/encoders.py --profile       # also where each Flax forward's time goes, by kind of operation

Both sides get identical weights (the Flax side is converted from the PyTorch module's state dict through the
real converter rules) and identical inputs; outputs are compared so a fast wrong answer cannot win. The two sides
are timed in alternating rounds (best of each), so a slow spell of a shared machine does not land on one side only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import jax  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

from jaxprobe.encoders.conversion import dinov2, siglip, timm_vit  # noqa: E402
from jaxprobe.encoders.conversion.rules import apply_rules  # noqa: E402
from jaxprobe.encoders import Encoder, build_module  # noqa: E402
from jaxprobe.encoders import registry  # noqa: E402
from jaxprobe import hostmem  # noqa: E402
from jaxprobe.encoders import cpu_kernels  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16 spec sheets


def vit_flops(cfg, size: int) -> float:
    """Forward FLOPs per image (multiply-add = 2): patch embedding, blocks, and the MAP head where present."""
    t = (size // cfg.patch_size) ** 2 + (1 if cfg.class_token else 0)
    d, m = cfg.width, cfg.mlp_dim
    per_block = 2 * t * (4 * d * d + 2 * d * m) + 4 * t * t * d
    total = cfg.depth * per_block + 2 * t * cfg.patch_size ** 2 * 3 * d
    if cfg.pool == "map":
        total += 2 * (2 * t * d * d + 2 * d * d + 2 * d * m) + 4 * t * d
    if cfg.proj_dim:
        total += 2 * d * cfg.proj_dim
    return float(total)


def profile_shares(fn) -> dict[str, float]:
    """Share of one call's XLA execution time by kind of operation (``jax.profiler`` trace): the native kernels'
    custom calls (``ffi_call``), XLA's fusions, and the rest, each as a fraction of their sum. The operations are
    the events named like HLO instructions on the threads XLA:CPU runs a program on (its client thread, which runs
    small programs itself, and its intra-op pool)."""
    import collections
    import glob
    import re
    import tempfile

    from jax.profiler import ProfileData

    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            fn()
        data = ProfileData.from_file(glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True)[0])
    hlo_name = re.compile(r"[a-z][a-z0-9_-]*(\.[0-9]+)*")
    kinds: collections.Counter = collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            if not line.name.startswith(("tf_XLAEigen", "tf_XLAPjRtCpuClient")):
                continue
            for event in line.events:
                name = event.name
                if not hlo_name.fullmatch(name):  # executor and thread-pool bookkeeping, "end: ..." markers
                    continue
                kind = "native kernels" if name.startswith("ffi_call") else (
                    "XLA fusions" if "fusion" in name else "other XLA operations")
                kinds[kind] += event.duration_ns
    total = sum(kinds.values()) or 1
    return {k: v / total for k, v in kinds.most_common()}


def torch_reference(name):
    from reference_models import dinov2_config, siglip_vision_kwargs

    if name == "rad_dino":
        from transformers import Dinov2Model

        model = Dinov2Model(dinov2_config(full=True))
        return model, lambda x: (lambda o: (o.last_hidden_state[:, 0], o.last_hidden_state[:, 1:]))(model(pixel_values=x)), dinov2
    if name == "chexagent":
        from transformers import SiglipVisionConfig, SiglipVisionModel

        model = SiglipVisionModel(SiglipVisionConfig(**siglip_vision_kwargs(full=True)))
        return model, lambda x: (lambda o: (o.pooler_output, o.last_hidden_state))(model(pixel_values=x)), siglip
    from open_clip.timm_model import TimmModel

    model = TimmModel("vit_base_patch16_224", embed_dim=512, image_size=224, pool="", proj="linear", proj_bias=False)
    prefix = model.trunk.num_prefix_tokens
    return model, lambda x: (model(x), model.trunk.forward_features(x)[:, prefix:]), timm_vit


def flax_from_torch(name, model, fam, dtype):
    cfg, spec = registry.get(name).config, registry.get(name).spec
    sd = {fam.canonical_key(k) if hasattr(fam, "canonical_key") else k: v.detach().float().numpy()
          for k, v in model.state_dict().items()}
    params = apply_rules(sd, fam.rules(cfg), ignore=fam.ignore, source=name)
    module = build_module(cfg, dtype=dtype)
    state = nnx.state(module)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(module, state)
    return Encoder(module, cfg, spec, dtype=dtype)


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up (compilation for JAX)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def timeit_pair(a, b, repeats: int) -> tuple[float, float]:
    """Best times of ``a`` and ``b`` over ``repeats`` rounds that run them in turn (after one warm-up call each),
    so a slow spell of a shared machine falls on both sides rather than on whichever ran then."""
    a()
    b()
    best_a = best_b = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        best_a, best_b = min(best_a, t1 - t0), min(best_b, t2 - t1)
    return best_a, best_b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoders", default="rad_dino,chexagent,biomedclip")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="batch 2, 2 repeats")
    ap.add_argument("--bf16", action="store_true", help="also time bfloat16 compute (meant for GPUs)")
    ap.add_argument("--profile", action="store_true",
                    help="also trace one Flax forward per encoder and print its time by kind of operation")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch side (e.g. on a GPU without torch CUDA)")
    ap.add_argument("--host-memory", choices=hostmem.POLICIES, default=None,
                    help="malloc policy for the whole process, both frameworks alike (default: as jaxprobe's "
                         "commands set it; see jaxprobe.hostmem)")
    args = ap.parse_args()
    memory = hostmem.apply(args.host_memory)  # before JAX starts its CPU client, as `python -m jaxprobe.embed` does
    if args.quick:
        args.batch, args.repeats = 2, 2
    device = jax.devices()[0]
    torch_threads = torch.get_num_threads()
    print(f"jax {jax.__version__} on {device.platform}:{device.device_kind} | torch {torch.__version__} "
          f"({torch_threads} threads) | batch {args.batch} | best of {args.repeats} rounds, flax and torch in turn\n"
          f"{memory}\n"
          f"{cpu_kernels.describe() if device.platform == 'cpu' else ''}")
    print(f"{'encoder':<11} {'size':>4} {'flax img/s':>11} {'torch img/s':>12} {'flax/torch':>10} {'max rel err':>11}")
    for name in args.encoders.split(","):
        cfg, spec = registry.get(name).config, registry.get(name).spec
        s = spec.input_size
        model, torch_fn, fam = torch_reference(name)
        model = model.float().eval()
        enc = flax_from_torch(name, model, fam, "float32")
        x = np.random.default_rng(0).standard_normal((args.batch, s, s, 3)).astype(np.float32)
        xj = jax.device_put(x)
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()

        def run_flax():
            jax.block_until_ready(enc.embed(xj))

        def run_torch():
            with torch.inference_mode():
                torch_fn(xt)

        g, _ = enc.embed(xj)
        if args.no_torch:
            t_flax, t_torch, err = timeit(run_flax, args.repeats), float("nan"), float("nan")
        else:
            t_flax, t_torch = timeit_pair(run_flax, run_torch, args.repeats)
            with torch.inference_mode():
                ref_g = torch_fn(xt)[0].numpy()
            err = float(np.linalg.norm(np.asarray(g) - ref_g) / np.linalg.norm(ref_g))
        print(f"{name:<11} {s:>4} {args.batch / t_flax:>11.2f} {args.batch / t_torch:>12.2f} "
              f"{t_torch / t_flax:>10.2f} {err:>11.1e}")
        if args.profile:
            shares = profile_shares(run_flax)
            print(f"{'':<11} profile of one forward: " + (", ".join(f"{k} {v:.1%}" for k, v in shares.items())
                                                          or "no XLA:CPU operations in the trace (not on the CPU?)"))
        if args.bf16:
            enc16 = flax_from_torch(name, model, fam, "bfloat16")
            t16 = timeit(lambda: jax.block_until_ready(enc16.embed(xj)), args.repeats)
            flops = vit_flops(cfg, s) * args.batch / t16
            peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device.device_kind), None)
            frac = f"{flops / (peak * 1e12):.1%} of {peak:.0f} TFLOP/s" if peak else "peak unknown"
            print(f"{'':<11} bf16: {args.batch / t16:.1f} img/s, {flops / 1e12:.1f} TFLOP/s ({frac})")



if __name__ == "__main__":
    main()
