"""The GPU checks, as one prepared script (run it where ``jax.devices()`` is a GPU; it also runs on a CPU, slowly,
with ``--quick``):

1. each study encoder at full size: float32 (matmul precision "highest") and bfloat16 images/s, TFLOP/s and the
   fraction of the chip's dense bf16 peak;
2. the custom segmenter's training step at the paper's sizes (RAD-DINO's 37x37x768 patches, widths 512/256,
   refine 64, 8 heads, attention 256, output 518x518, batch 16);
3. the parity check on the GPU at precision "highest": a re-randomised full-size reference model of each study
   family, written by its own library, converted and compared with the PyTorch reference (run on the CPU),
   relative error <= 1e-5.

    python benchmarks/gpu.py --out gpu.json          # about 10 minutes on one H200 (first compiles included)
    python benchmarks/gpu.py --quick                 # batch 2, reduced segmenter, parity of one family

Prints one line per figure and writes them all to ``--out`` (JSON).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from benchmarks.encoders import PEAK_BF16_TFLOPS, flax_from_torch, timeit, torch_reference, vit_flops  # noqa: E402
from jaxprobe.encoders import registry  # noqa: E402


def encoder_speed(name: str, batch: int, repeats: int) -> dict:
    cfg, spec = registry.get(name).config, registry.get(name).spec
    model, _, fam = torch_reference(name)
    model = model.float().eval()
    x = jax.device_put(np.random.default_rng(0).standard_normal((batch, spec.input_size, spec.input_size, 3),
                                                               np.float32))
    device = jax.devices()[0]
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device.device_kind), None)
    out = {"encoder": name, "input_size": spec.input_size, "batch": batch}
    for dtype in ("float32", "bfloat16"):
        enc = flax_from_torch(name, model, fam, dtype)
        seconds = timeit(lambda: jax.block_until_ready(enc.embed(x)), repeats)
        flops = vit_flops(cfg, spec.input_size) * batch / seconds
        out[dtype] = {"images_per_s": batch / seconds, "tflops": flops / 1e12,
                      "fraction_of_bf16_peak": flops / (peak * 1e12) if peak else None, "precision": enc.precision}
        frac = f"{flops / (peak * 1e12):.1%} of {peak:.0f}" if peak else "peak unknown"
        print(f"{name:<11} {dtype:<9} {batch / seconds:9.1f} img/s  {flops / 1e12:7.1f} TFLOP/s ({frac})",
              flush=True)
    return out


def segmenter_step(quick: bool, repeats: int) -> dict:
    from benchmarks.heads import _seconds_per_step, jax_step
    from jaxprobe.heads import CrossAttentionSegmenter

    batch, grid, c, size = 16, 37, 768, 518
    kw = dict(widths=(64, 32), refine_size=64, num_heads=4, attention_dim=32) if quick else dict(
        widths=(512, 256), refine_size=64, num_heads=8, attention_dim=256)
    rng = np.random.default_rng(0)
    patches = rng.standard_normal((batch, grid, grid, c)).astype(np.float16)
    glob = rng.standard_normal((batch, c)).astype(np.float32)
    masks = rng.random((batch, size, size)) > 0.9
    step = jax_step(lambda rngs: CrossAttentionSegmenter(c, c, grid, size, rngs=rngs, **kw), (patches, glob), masks,
                    "bce")
    seconds = _seconds_per_step({"step": step}, 3 if quick else 10, repeats)["step"]
    print(f"custom segmenter train step, batch {batch}, widths {kw['widths']}: {seconds * 1e3:.1f} ms", flush=True)
    return {"batch": batch, **{k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()},
            "seconds_per_step": seconds}


def parity(names: list[str]) -> list[dict]:
    import convert
    from reference_models import make_biomedclip, make_dinov2, make_siglip

    makers = {"rad_dino": lambda d: make_dinov2(d, full=True), "chexagent": lambda d: make_siglip(d, full=True),
              "biomedclip": lambda d: make_biomedclip(d)}
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            src = makers[name](Path(tmp) / f"{name}-src")
            report = convert.convert(name, src, Path(tmp) / name, n_images=2, log=lambda m: None)
            out.append({"encoder": name, "passed": report["passed"], "worst_rel": report["worst_rel"],
                        "device": str(jax.devices()[0])})
            print(f"parity {name} on {jax.devices()[0].platform}: worst relative error {report['worst_rel']:.2e} "
                  f"-> {'passed' if report['passed'] else 'FAILED'}", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.repeats = 2, 1
    device = jax.devices()[0]
    print(f"jax {jax.__version__} on {device.platform}:{device.device_kind}", flush=True)
    names = list(registry.STUDY_NAMES)
    t0 = time.perf_counter()
    report = {"device": f"{device.platform}:{device.device_kind}", "jax": jax.__version__,
              "encoders": [encoder_speed(n, args.batch, args.repeats) for n in (names[-1:] if args.quick else names)],
              "custom_segmenter": segmenter_step(args.quick, args.repeats),
              "parity": parity(names[-1:] if args.quick else names)}
    report["seconds"] = time.perf_counter() - t0
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"-> {args.out}")
    return 0 if all(p["passed"] for p in report["parity"]) else 1


if __name__ == "__main__":
    _ = jnp  # jax.numpy is imported so a broken GPU install fails here, before any work
    sys.exit(main())
