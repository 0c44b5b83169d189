"""Extraction: records -> parallel read + preprocess -> jitted ``encoder.embed`` sharded over local devices -> store.

Work is split into chunks of ``chunk_size`` rows, the unit of resumption. Images are loaded by a thread pool a
few batches ahead of the devices, embedded in fixed-shape batches (a partial batch is padded, so there is one
compiled program), and each finished chunk is written to the store and marked done. With ``jax.distributed`` initialised,
process p of P takes the pending chunks c with c % P == p, all writing into the same folder.

A store holds what the heads read (``features``: global embeddings, plus patch tokens for the segmentation heads)
and is shared by the analyses of one image set: a global-only analysis reads a complete store with patch tokens
when there is one, and a segmentation analysis adds its masks as a side array, filling only the chunks that lack
them (without running the encoder where the embeddings are there).
"""
from __future__ import annotations

import contextlib
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..locking import exclusive
from .store import ARRAYS, META, Store, StoreError, store_key

LoadFn = Callable[[int], dict[str, np.ndarray]]  # row -> {"pixels": [S,S,3] float32, optionally "mask": bool [S,S]}


def local_mesh() -> Mesh:
    return Mesh(np.array(jax.local_devices()), ("data",))


def store_path(root: str | Path, name: str, encoder, ids: Sequence[str], extra: dict | None = None,
               features: Sequence[str] = ARRAYS) -> Path:
    key = store_key(encoder.identity(), list(map(str, ids)), {**(extra or {}), "features": list(features)})
    return Path(root) / f"{name}-{key}"


def mask_part_key(mask_size: int, settings: dict | None) -> str:
    """The side array's key: the mask's size and how it was made (target name, resampling, threshold)."""
    return store_key({"size": mask_size, **(settings or {})}, [])[:12]


def _wait_for(path: Path, timeout: float) -> None:
    t0 = time.monotonic()
    while not path.exists():
        if time.monotonic() - t0 > timeout:
            raise StoreError(f"{path} did not appear within {timeout:.0f}s (process 0 creates the store)")
        time.sleep(0.2)


def open_or_create(path: Path, encoder, ids: Sequence[str], *, chunk_size: int, features: Sequence[str],
                   targets: dict[str, np.ndarray] | None, extra: dict | None, timeout: float = 600.0) -> Store:
    ids = list(map(str, ids))
    identity = encoder.identity()
    if (path / META).exists():
        return Store.open(path, ids=ids, identity=identity)
    if jax.process_index() != 0:
        _wait_for(path / META, timeout)
        return Store.open(path, ids=ids, identity=identity)
    spec = encoder.spec
    return Store.create(path, ids=ids, identity=identity, global_dim=spec.global_dim, grid=spec.grid,
                        patch_dim=spec.patch_dim, chunk_size=chunk_size, features=features, targets=targets,
                        extra=extra)


def _with_masks(store: Store, mask_size: int, settings: dict | None, timeout: float) -> str:
    """The store's side array for these masks, added by process 0 (the others wait for it to appear)."""
    part = f"masks-{mask_part_key(mask_size, settings)}"
    if jax.process_index() == 0:
        return store.add_masks(part[len("masks-"):], mask_size, settings or {})
    t0 = time.monotonic()
    while part not in store.meta["sides"]:
        if time.monotonic() - t0 > timeout:
            raise StoreError(f"{store.path}: side array {part} did not appear within {timeout:.0f}s")
        time.sleep(0.2)
        store.reload()
    return part


def extract(encoder, ids: Sequence[str], load_fn: LoadFn, root: str | Path, *, name: str, batch_size: int = 16,
            chunk_size: int | None = None, workers: int = 4, prefetch: int = 2, mask_size: int | None = None,
            mask_settings: dict | None = None, features: Sequence[str] = ARRAYS,
            targets: dict[str, np.ndarray] | None = None, extra: dict[str, Any] | None = None,
            progress: bool = True, wait_timeout: float = 3600.0, log: Callable[[str], None] = print) -> Store:
    """Embed every row into the store under ``root`` (resuming a partial one) and return it, its masks bound.

    ``features``: ("global",) or ("global", "patches"). ``mask_size``: masks (``load_fn(i)["mask"]``) at that
    size go to the side array keyed by ``mask_settings`` (what made them: target, resampling, threshold)."""
    chunk_size = chunk_size or batch_size * 8
    features = tuple(features)
    if features == ("global",):  # a store of this image set with patch tokens also holds what is needed here
        fuller = store_path(root, name, encoder, ids, extra, ARRAYS)
        if (fuller / META).exists() and Store.open(fuller).part_complete():
            path = fuller
        else:
            path = store_path(root, name, encoder, ids, extra, features)
    else:
        path = store_path(root, name, encoder, ids, extra, features)
    # independent runs on one cache: one extracts, the others wait and reuse (processes of one distributed
    # extraction share the store by design and take no lock)
    lock = (exclusive(path.with_name(path.name + ".lock"), f"extracting {path.name}") if jax.process_count() == 1
            else contextlib.nullcontext())
    with lock:
        return _extract(path, encoder, ids, load_fn, name=name, batch_size=batch_size, chunk_size=chunk_size,
                        workers=workers, prefetch=prefetch, mask_size=mask_size, mask_settings=mask_settings,
                        features=features, targets=targets, extra=extra, progress=progress,
                        wait_timeout=wait_timeout, log=log)


def _extract(path, encoder, ids, load_fn, *, name, batch_size, chunk_size, workers, prefetch, mask_size,
             mask_settings, features, targets, extra, progress, wait_timeout, log) -> Store:
    store = open_or_create(path, encoder, ids, chunk_size=chunk_size, features=features, targets=targets,
                           extra=extra, timeout=wait_timeout)
    part = _with_masks(store, mask_size, mask_settings, wait_timeout) if mask_size else None
    store.bind_masks(part)
    if store.complete:
        log(f"embeddings: {path.name} complete, reusing" + (f" (its {', '.join(store.features)})"
                                                           if store.features != features else ""))
        return store
    pid, nproc = jax.process_index(), jax.process_count()
    embed_pending = set(store.pending_chunks())
    mask_pending = set(store.pending_chunks(part)) if part else set()
    mine = [c for c in sorted(embed_pending | mask_pending) if c % nproc == pid]
    mesh = local_mesh()
    ndev = mesh.devices.size
    padded = -(-batch_size // ndev) * ndev  # every device gets the same number of rows
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    s = encoder.spec.input_size
    done_before = store.meta["n_chunks"] - len(embed_pending)
    log(f"embeddings: {path.name}: {len([c for c in mine if c in embed_pending])} chunks to embed on process "
        f"{pid}/{nproc} ({done_before} already done), {ndev} device(s), batch {padded}"
        + (f"; masks {part}: {len(mask_pending)} chunks" if part else ""))
    timing = {"load": 0.0, "embed": 0.0, "write": 0.0}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(store.chunk_rows(c)[1] - store.chunk_rows(c)[0] for c in mine), unit="img",
                   desc=f"embed {name}", smoothing=0.1)
    spec = encoder.spec
    # (chunk, first row, last row) of every batch this process owns; images are loaded `prefetch` batches ahead
    # by the thread pool, so at most (prefetch + 1) batches of pixels are in memory whatever N is.
    plan = [(c, a, min(a + padded, store.chunk_rows(c)[1])) for c in mine
            for a in range(store.chunk_rows(c)[0], store.chunk_rows(c)[1], padded)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        queue: deque = deque()
        upcoming = iter(plan)

        def submit_next() -> None:
            batch = next(upcoming, None)
            if batch is not None:
                queue.append([pool.submit(load_fn, i) for i in range(batch[1], batch[2])])

        for _ in range(prefetch + 1):
            submit_next()
        out = None
        for c, a, b in plan:
            t0 = time.perf_counter()
            items = [f.result() for f in queue.popleft()]
            submit_next()
            t1 = time.perf_counter()
            first, last = store.chunk_rows(c)
            embed, masks = c in embed_pending, c in mask_pending
            if out is None:
                out = {}
                if embed:
                    out["global"] = np.empty((last - first, spec.global_dim), np.float32)
                    if "patches" in store.features:
                        out["patches"] = np.empty((last - first, spec.grid, spec.grid, spec.patch_dim), np.float16)
                if masks:
                    out[part] = np.empty((last - first, -(-mask_size * mask_size // 8)), np.uint8)
            n = b - a
            if embed:
                pixels = np.zeros((padded, s, s, 3), np.float32)  # padding rows stay zero
                for j, it in enumerate(items):
                    if it["pixels"].shape != (s, s, 3):
                        raise StoreError(f"row {a + j}: load_fn gave pixels {it['pixels'].shape}, "
                                         f"encoder expects ({s}, {s}, 3)")
                    pixels[j] = it["pixels"]
                g, p = encoder.embed(jax.device_put(pixels, sharding))
                out["global"][a - first:b - first] = np.asarray(g)[:n]
                if "patches" in out:
                    out["patches"][a - first:b - first] = np.asarray(p)[:n]
                del pixels
            if masks:
                out[part][a - first:b - first] = np.packbits(
                    np.stack([np.asarray(it["mask"], bool).reshape(-1) for it in items]), axis=1)
            t2 = time.perf_counter()
            if b == last:  # chunk finished: flush its rows, then its markers
                store.write_rows(first, out)
                if embed:
                    store.mark_done(c)
                if masks:
                    store.mark_done(c, part)
                out = None
            t3 = time.perf_counter()
            timing["load"] += t1 - t0
            timing["embed"] += t2 - t1
            timing["write"] += t3 - t2
            if bar is not None:
                bar.update(n)
            del items
    if bar is not None:
        bar.close()
    store.meta["timing_s"] = {k: round(v, 3) for k, v in timing.items()}
    log("embeddings: time in loading %.1fs (not overlapped), embedding %.1fs, writing %.1fs"
        % (timing["load"], timing["embed"], timing["write"]))
    t0 = time.monotonic()
    parts = (None, part) if part else (None,)
    while not store.finalize(parts):  # other processes still have chunks in flight
        if nproc == 1 or time.monotonic() - t0 > wait_timeout:
            missing = len(set().union(*(store.pending_chunks(p) for p in parts)))
            raise StoreError(f"{path}: {missing} chunks still missing after this process finished its share")
        time.sleep(0.5)
    log(f"embeddings: {path.name} complete ({store.n} records)")
    return Store.open(path).bind_masks(part)
