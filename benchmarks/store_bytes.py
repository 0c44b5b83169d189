"""Bytes the embedding stores of ``configs/paper.py`` take at the paper's cohort sizes, before and after stores
were shared per image set and held only what the heads read.

Nothing is embedded: the sizes come from the store's own layout functions (``jaxprobe.embed.store.layout`` and
``mask_layout``), the study's three full-size encoder specs from the registry, each analysis's head (what it
reads, ``jaxprobe.heads.FEATURES``) and task (which cases: ``jaxprobe.tasks``), and the paper's counts: SIIM-ACR
10,675 images of which 2,379 positive (segmentation trains on the positives; classification on the balanced
2,379 + 2,379), the cardiomegaly cohort 30,000 PA films (15,000 + 15,000; every film has a heart mask).

* before: one store per (encoder, image set, mask option), each with global embeddings and patch tokens (and
  the masks in it when the analysis had a mask target) — the cardiomegaly cohort twice, patch tokens for the
  global-only analyses;
* after: one store per (encoder, image set) with patch tokens only where a head reads them, the global-only
  analyses reading a store with patch tokens of the same images when there is one, masks as side arrays.

    python benchmarks/store_bytes.py
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxprobe import config as config_lib  # noqa: E402
from jaxprobe import tasks  # noqa: E402
from jaxprobe.embed.store import ARRAYS, layout, mask_layout, nbytes  # noqa: E402
from jaxprobe.encoders import registry  # noqa: E402
from jaxprobe.heads import FEATURES  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs")
PAPER = {("siim", "positives"): 2379, ("siim", "labelled"): 2 * 2379,
         ("cardiomegaly", "positives"): 30000, ("cardiomegaly", "labelled"): 30000, ("cardiomegaly", "valued"): 30000}


def image_set(source: str, cases: str) -> str:
    """Which images an analysis embeds: the cardiomegaly analyses all use the balanced PA cohort (every film
    has a heart mask and a CTR); SIIM segmentation its positives, SIIM classification the balanced set."""
    return f"{source}:all" if source == "cardiomegaly" else f"{source}:{cases}"


def plan(paper_config) -> list[dict]:
    rows = []
    for analysis in paper_config.analyses:
        c = config_lib.load(os.path.join(CONFIGS, f"{analysis}.py"), "full")
        task = tasks.get(c.task)
        rows.append({"analysis": analysis, "images": image_set(c.data.source, task.cases),
                     "n": PAPER[(c.data.source, task.cases)], "features": FEATURES[c.head.name],
                     "mask": c.target if task.target_kind == "mask" else None})
    return rows


def store_bytes(rows: list[dict], spec, *, shared: bool) -> tuple[int, dict[str, int]]:
    """Total bytes of one encoder's stores, and the bytes each analysis added."""
    stores: dict[tuple, set] = {}  # store key -> the side arrays (mask targets) in it
    added = {}
    for r in rows:
        if shared:  # as jaxprobe.embed.extract: a global-only request reads a store with patches if one exists
            features = tuple(r["features"])
            if features == ("global",) and (r["images"], tuple(ARRAYS)) in stores:
                features = tuple(ARRAYS)
            key = (r["images"], features)
        else:
            features = ARRAYS
            key = (r["images"], r["mask"])
        before = _total(stores, rows, spec)
        stores.setdefault(key, set())
        if r["mask"]:
            stores[key].add(r["mask"])
        added[r["analysis"]] = _total(stores, rows, spec) - before
    return _total(stores, rows, spec), added


def _total(stores, rows, spec) -> int:
    n_of = {r["images"]: r["n"] for r in rows}
    total = 0
    for (images, second), masks in stores.items():
        features = second if isinstance(second, tuple) else ARRAYS
        n = n_of[images]
        total += nbytes(*layout(n, spec.global_dim, spec.grid, spec.patch_dim, features))
        for _ in masks:
            shape, dtype = mask_layout(n, spec.input_size)
            total += nbytes({"m": shape}, {"m": dtype})
    return total


def main() -> None:
    paper = config_lib.load(os.path.join(CONFIGS, "paper.py"), "full")
    rows = plan(paper)
    print(f"{'analysis':14s} {'images':24s} {'n':>7s}  head reads")
    for r in rows:
        print(f"{r['analysis']:14s} {r['images']:24s} {r['n']:7d}  {', '.join(r['features'])}"
              + (f" + {r['mask']} masks" if r["mask"] else ""))
    print()
    print(f"{'encoder':12s} {'before GB':>10s} {'after GB':>10s}")
    totals = [0, 0]
    per_analysis = {r["analysis"]: [0, 0] for r in rows}
    for name in registry.STUDY_NAMES:
        spec = registry.get(name).spec
        before, add_b = store_bytes(rows, spec, shared=False)
        after, add_a = store_bytes(rows, spec, shared=True)
        totals[0] += before
        totals[1] += after
        for a in per_analysis:
            per_analysis[a][0] += add_b[a]
            per_analysis[a][1] += add_a[a]
        print(f"{name:12s} {before / 1e9:10.2f} {after / 1e9:10.2f}")
    print(f"{'all three':12s} {totals[0] / 1e9:10.2f} {totals[1] / 1e9:10.2f}  ({totals[0] / totals[1]:.1f}x less)")
    print()
    print("bytes each analysis adds, run in the order of configs/paper.py (all three encoders):")
    for a, (b, af) in per_analysis.items():
        print(f"  {a:14s} before {b / 1e9:7.2f} GB   after {af / 1e9:7.2f} GB")


if __name__ == "__main__":
    main()
