"""Training steps/s of each head in JAX (jaxprobe.train's jitted step) against its PyTorch twin, side by side.

Same shapes (37x37x768 patches, global 768, input 518 — RAD-DINO's), batch 16, AdamW(lr 1e-4, wd 1e-2), same
CPU, one process. Batches are already in memory on both sides: this times the training step, not data reading.
Both frameworks run under the host memory policy jaxprobe's commands set (``jaxprobe.hostmem``, printed in the
header; ``--host-memory system`` for the system's malloc).

    python -m benchmarks.heads           # from the repository root; about 4 minutes on 2 cores
    python -m benchmarks.heads --quick   # fewer steps and repeats
    python -m benchmarks.heads --full    # adds the full-size segmenter: a warm-up and one timed step each
                                         # (~40-60 s per PyTorch step on 2 cores, several minutes in all)

The custom segmenter is benchmarked at REDUCED conv widths by default: (64, 32) with 4 heads, refine size 64
as in the paper (see --custom-*; the paper's 512/256 widths take ~38 s per PyTorch step on 2 cores). Its
PyTorch twin runs in the paper's order
(upsample the 256-channel map to 518x518, then the 1x1 classifier) and in the cheaper equivalent order that
jaxprobe uses (classifier first), so the ratio from the reordering and the ratio from the rest are both visible.

Second part (linear seg probe, unless --only leaves it out): where its step goes in each framework — the
float16 -> float32 conversion of the patch tokens alone, the step on float32 inputs, and a bandwidth bound: the
bytes a step must move at the least (the float16 patches read by the forward and again by the weight gradient,
the uint8 masks) over the read bandwidth each framework reaches on this machine, against the measured step.

Third part: K = 8 seeds of one head as one vmapped program against 8 separate one-seed programs doing the
same steps.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.torch_heads import TorchCrossAttentionSegmenter, TorchLinearProbe, TorchLinearSegProbe
from jaxprobe import hostmem
from jaxprobe.heads import CrossAttentionSegmenter, LinearProbe, LinearSegProbe
from jaxprobe.train import TrainConfig, data_mesh, init_members, make_steps


def _seconds_per_step(steps: dict, n_steps: int, repeats: int) -> dict:
    """Median over repeats of the mean time of ``n_steps`` calls of each step (after one warm-up call each).

    The competitors take turns within each repeat, so a change in machine load hits all of them alike. A JAX
    step returns its (asynchronously computed) loss; only the last one is waited for, as in ``fit``'s loop."""
    for step in steps.values():
        jax.block_until_ready(step())
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(n_steps):
                last = step()
            jax.block_until_ready(last)
            times[name].append((time.perf_counter() - start) / n_steps)
    return {name: statistics.median(t) for name, t in times.items()}


def jax_step(make_head, features, targets, loss: str, seeds=(0,)):
    """A closure running one step of jaxprobe.train's vmapped program for ``len(seeds)`` members."""
    config = TrainConfig(seeds=seeds)
    head, graphdef_train, graphdef_eval, state = init_members(make_head, config)
    steps = make_steps(graphdef_train, graphdef_eval, loss, config)
    mesh = data_mesh()
    batch = jax.device_put((tuple(features), targets, np.ones(len(targets), np.float32)),
                           jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    active = jnp.ones(len(seeds), bool)
    carry = [state["params"], state["stats"], state["opt_state"]]

    def step():
        params, stats, opt_state, loss_value = steps.train_step(*carry, active, *batch)
        carry[:] = [params, stats, opt_state]
        return loss_value

    return step


def torch_step(model, features, targets, loss: str):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-2)
    # the store's dtypes (float16 patches, uint8 masks) on both sides; each step converts, as jaxprobe's does
    features = [torch.from_numpy(np.asarray(f)) for f in features]
    targets = torch.from_numpy(np.asarray(targets))
    criterion = F.binary_cross_entropy_with_logits if loss == "bce" else F.mse_loss
    model.train()

    def step():
        optimizer.zero_grad(set_to_none=True)
        criterion(model(*[f.float() for f in features]), targets.float()).backward()
        optimizer.step()

    return step


def read_bandwidth(n_bytes: int = 1 << 28, repeats: int = 5) -> dict:
    """Bytes per second each framework reads when summing a float32 array of ``n_bytes`` (nothing written)."""
    x_np = np.ones(n_bytes // 4, np.float32)
    x_jax = jax.device_put(x_np)
    sum_jax = jax.jit(jnp.sum)
    x_torch = torch.from_numpy(x_np)
    seconds = _seconds_per_step({"jax": lambda: sum_jax(x_jax), "torch": lambda: torch.sum(x_torch)}, 4, repeats)
    return {name: n_bytes / s for name, s in seconds.items()}


def linear_seg_split(patches, masks, g: int, c: int, s: int, n_steps: int, repeats: int) -> None:
    """Print the linear seg probe's step taken apart (conversion, float32-input step) and its bandwidth bound."""
    make = lambda rngs: LinearSegProbe(c, g, s, rngs=rngs)  # noqa: E731
    patches_jax = jax.device_put(patches)
    convert_jax = jax.jit(lambda x: x.astype(jnp.float32))
    patches_torch = torch.from_numpy(patches)
    seconds = _seconds_per_step({
        "jax convert": lambda: convert_jax(patches_jax),
        "torch convert": lambda: patches_torch.float(),
        "jax step": jax_step(make, [patches], masks, "bce"),
        "torch step": torch_step(TorchLinearSegProbe(c, g, s), [patches], masks, "bce"),
        "jax step f32": jax_step(make, [patches.astype(np.float32)], masks, "bce"),
        "torch step f32": torch_step(TorchLinearSegProbe(c, g, s), [patches.astype(np.float32)], masks, "bce"),
    }, n_steps, repeats)
    bandwidth = read_bandwidth()
    least_bytes = 2 * patches.nbytes + masks.nbytes
    print(f"\n== linear seg probe: where the step goes (batch {len(patches)}) ==")
    print(f"bytes a step must move at the least: {least_bytes / 1e6:.1f} MB (float16 patches read twice "
          f"{2 * patches.nbytes / 1e6:.1f} MB, uint8 masks {masks.nbytes / 1e6:.1f} MB)")
    for name in ("jax", "torch"):
        step, step32, convert = (seconds[f"{name} step"], seconds[f"{name} step f32"], seconds[f"{name} convert"])
        at_bandwidth = least_bytes / bandwidth[name]
        print(f"  {name:5s} step {step * 1e3:7.2f} ms | float16->float32 conversion alone {convert * 1e3:6.2f} ms"
              f" | step on float32 inputs {step32 * 1e3:7.2f} ms | read bandwidth {bandwidth[name] / 1e9:5.1f} GB/s:"
              f" the least bytes take {at_bandwidth * 1e3:5.2f} ms = {at_bandwidth / step:5.1%} of the step")
    print(f"  jax/torch speed ratio: step {seconds['torch step'] / seconds['jax step']:.2f}x, step on float32 inputs "
          f"{seconds['torch step f32'] / seconds['jax step f32']:.2f}x, conversion alone "
          f"{seconds['torch convert'] / seconds['jax convert']:.2f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--full", action="store_true", help="also time 2 steps of the full-size custom segmenter")
    parser.add_argument("--only", nargs="+", choices=("linear", "linear_seg", "custom"),
                        help="benchmark only these heads")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--grid", type=int, default=37)
    parser.add_argument("--patch-dim", type=int, default=768)
    parser.add_argument("--input-size", type=int, default=518)
    parser.add_argument("--custom-widths", type=int, nargs=2, default=(64, 32))
    parser.add_argument("--custom-refine-size", type=int, default=64)
    parser.add_argument("--custom-heads", type=int, default=4)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count())
    parser.add_argument("--host-memory", choices=hostmem.POLICIES, default=None,
                        help="malloc policy for the whole process, both frameworks alike (default: as jaxprobe's "
                             "commands set it, JAXPROBE_HOST_MEMORY or keep; see jaxprobe.hostmem)")
    args = parser.parse_args(argv)
    memory = hostmem.apply(args.host_memory)  # before JAX starts its CPU client, as `python -m jaxprobe.run` does
    torch.set_num_threads(args.torch_threads)
    repeats = 2 if args.quick else 3
    b, g, c, s = args.batch, args.grid, args.patch_dim, args.input_size
    rng = np.random.default_rng(0)
    patches = rng.normal(size=(b, g, g, c)).astype(np.float16)
    global_emb = rng.normal(size=(b, c)).astype(np.float32)
    masks = (rng.random((b, s, s)) > 0.7).astype(np.uint8)
    labels = (rng.random(b) > 0.5).astype(np.float32)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} x{len(jax.devices())}, torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads; batch {b}, patches {g}x{g}x{c}, input {s}\n{memory}")

    small = dict(widths=tuple(args.custom_widths), refine_size=args.custom_refine_size, num_heads=args.custom_heads,
                 attention_dim=args.custom_widths[1])
    size_note = (f"widths {small['widths']}, refine {small['refine_size']}, {small['num_heads']} heads "
                 "(REDUCED; paper: (512, 256), 64, 8)")
    cases = [
        ("linear", "linear probe (global -> 1)", "bce", [global_emb], labels,
         lambda rngs: LinearProbe(c, rngs=rngs), [("", TorchLinearProbe(c))], 2000 if not args.quick else 500),
        ("linear_seg", "linear seg probe (1x1 conv, upsample)", "bce", [patches], masks,
         lambda rngs: LinearSegProbe(c, g, s, rngs=rngs), [("", TorchLinearSegProbe(c, g, s))],
         10 if not args.quick else 4),
        ("custom", f"custom segmenter, {size_note}", "bce", [patches, global_emb], masks,
         lambda rngs: CrossAttentionSegmenter(c, c, g, s, rngs=rngs, **small),
         [("paper order", TorchCrossAttentionSegmenter(c, c, g, s, **small)),
          ("classifier first", TorchCrossAttentionSegmenter(c, c, g, s, upsample_first=False, **small))],
         3 if not args.quick else 2),
    ]
    if args.full:
        cases.append(("custom", "custom segmenter, FULL size (512, 256), 64, 8 heads", "bce", [patches, global_emb], masks,
                      lambda rngs: CrossAttentionSegmenter(c, c, g, s, rngs=rngs),
                      [("paper order", TorchCrossAttentionSegmenter(c, c, g, s))], 1))

    cases = [case[1:] for case in cases if not args.only or case[0] in args.only]
    print("\n== training step, JAX vs PyTorch ==")
    for title, loss, features, targets, make, twins, n_steps in cases:
        steps = {"jax": jax_step(make, features, targets, loss)}
        steps.update({label: torch_step(twin, features, targets, loss) for label, twin in twins})
        seconds = _seconds_per_step(steps, n_steps, 1 if "FULL" in title else repeats)
        jax_s = seconds.pop("jax")
        print(f"{title}\n  jax                      {1 / jax_s:10.2f} steps/s  ({jax_s * 1e3:9.2f} ms/step)")
        for label, torch_s in seconds.items():
            print(f"  torch {label:>18s} {1 / torch_s:10.2f} steps/s  ({torch_s * 1e3:9.2f} ms/step)"
                  f"   jax/torch speed ratio {torch_s / jax_s:6.2f}x")

    if not args.only or "linear_seg" in args.only:
        linear_seg_split(patches, masks, g, c, s, 10 if not args.quick else 4, repeats)

    print(f"\n== {args.members} seeds: one vmapped program vs {args.members} sequential one-seed programs ==")
    seeds = tuple(range(args.members))
    for title, loss, features, targets, make, _, n_steps in cases:
        if title.startswith("custom"):  # the vmapped comparison is about small heads
            continue
        singles = [jax_step(make, features, targets, loss, seeds=(seed,)) for seed in seeds]

        def sequential():
            return [single() for single in singles]

        seconds = _seconds_per_step({"vmapped": jax_step(make, features, targets, loss, seeds=seeds),
                                     "sequential": sequential}, n_steps, repeats)
        print(f"{title}\n  vmapped {seconds['vmapped'] * 1e3:9.2f} ms per step of all {args.members}, sequential "
              f"{seconds['sequential'] * 1e3:9.2f} ms   speed ratio {seconds['sequential'] / seconds['vmapped']:6.2f}x")


if __name__ == "__main__":
    main()
