"""Decode every record once, in parallel worker processes, into a cache that survives an interruption.

Each record's 8-bit image (``read_image``) and its masks (``Record.mask``) are decoded in a worker and written,
zlib-compressed (level 1: the cache is temporary, so compression speed matters more than size), to one file
named by a hash of everything that determines them: the record (ids, path, size, RLE strings), the image
file's size and modification time, and the reading options. A rerun after a crash or Ctrl-C finds the files
already written and decodes only the rest; a changed source file gets a new name and is decoded again. The
cache lives outside the TFDS dataset folder (which TFDS deletes when a build fails) and is removed once the
dataset is complete.

Bad images follow the data module's policy: with ``on_error="raise"`` the first ``DataError`` stops the run
(the images decoded so far stay cached); with ``"skip"`` the image is left out and listed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import pickle
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import BadItems, DataError
from ..images import read_image
from ..records import Record

log = logging.getLogger("jaxprobe.data")

# Bump when the cached payload's layout or meaning changes, so old cache files are never read as new ones.
CACHE_FORMAT = 1
CACHE_ZLIB_LEVEL = 1


def cache_key(record: Record, read_options: dict) -> str:
    try:
        stat = os.stat(record.path)
    except OSError as e:
        raise DataError(record.path, f"cannot stat image file: {e.strerror or e}") from None
    identity = [CACHE_FORMAT, record.source, record.image_id, record.path, record.height, record.width,
                record.rle_format, record.masks, stat.st_size, stat.st_mtime_ns, sorted(read_options.items())]
    return hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()


def cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.pkl"


def _pack(array: np.ndarray) -> tuple[bytes, tuple[int, ...], str]:
    array = np.ascontiguousarray(array)
    return zlib.compress(array.tobytes(), CACHE_ZLIB_LEVEL), array.shape, array.dtype.str


def _unpack(packed: tuple[bytes, tuple[int, ...], str]) -> np.ndarray:
    payload, shape, dtype = packed
    return np.frombuffer(zlib.decompress(payload), dtype=dtype).reshape(shape)


def decode_record(record: Record, read_options: dict) -> dict:
    """{"image": uint8 [H, W], "masks": {name: bool [H, W]}} of one record, checked against its size."""
    image = read_image(record.path, **read_options)
    if image.shape != (record.height, record.width):
        raise DataError(record.path, f"decoded image is {image.shape[0]}x{image.shape[1]}, but its record (header "
                                     f"or mask table) says {record.height}x{record.width}")
    masks = {}
    for name in record.mask_names:
        try:
            masks[name] = record.mask(name)
        except ValueError as e:  # an RLE string that does not fit the image
            raise DataError(record.path, f"mask {name!r}: {e}") from None
    return {"image": image, "masks": masks}


def _decode_into(task: tuple[Record, dict, str]) -> tuple[str, str] | None:
    """Worker: decode one record into its cache file (written atomically); a DataError comes back as (item, problem)."""
    record, read_options, path = task
    try:
        decoded = decode_record(record, read_options)
    except DataError as e:  # returned, not raised: DataError's two-argument constructor does not unpickle
        return e.item, e.problem
    packed = {"image": _pack(decoded["image"]), "masks": {k: _pack(v) for k, v in decoded["masks"].items()}}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "wb") as f:
        pickle.dump(packed, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, path)
    return None


def load_decoded(path: Path) -> dict:
    """What ``decode_record`` returned, read back from the cache."""
    with open(path, "rb") as f:
        packed = pickle.load(f)
    return {"image": _unpack(packed["image"]), "masks": {k: _unpack(v) for k, v in packed["masks"].items()}}


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def decode_all(records: Sequence[Record], cache_dir: str | os.PathLike, bad: BadItems, *,
               read_options: dict | None = None, workers: int | None = None, progress: bool = True
               ) -> dict[str, Path]:
    """image_id -> cache file of every record that decoded; failures go to ``bad`` (raise or skip).

    ``workers`` processes decode in parallel (default: the CPUs this process may use); 0 or 1 decodes here.
    """
    read_options = dict(read_options or {})
    cache_dir = Path(cache_dir)
    files: dict[str, Path] = {}
    for r in records:
        try:
            files[r.image_id] = cache_file(cache_dir, cache_key(r, read_options))
        except DataError as e:
            bad.bad(e)
    todo = [r for r in records if r.image_id in files and not files[r.image_id].exists()]
    done_before = len(files) - len(todo)
    if done_before:
        log.info("decoding: %d of %d images already decoded in %s, resuming", done_before, len(files), cache_dir)
    failed: set[str] = set()
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(files), initial=done_before, unit="img", desc="decode images", smoothing=0.1)
    outcomes = _run(todo, files, read_options, workers)
    try:
        for record, outcome in zip(todo, outcomes):
            if outcome is not None:
                failed.add(record.image_id)
                bad.bad(DataError(*outcome))  # raises under on_error="raise"
            if bar is not None:
                bar.update(1)
    finally:
        outcomes.close()  # now, not when the traceback is freed: stops the worker pool
        if bar is not None:
            bar.close()
    return {image_id: path for image_id, path in files.items() if image_id not in failed}


def _run(todo: Sequence[Record], files: dict[str, Path], read_options: dict,
         workers: int | None) -> Iterator[tuple[str, str] | None]:
    tasks = [(r, read_options, os.fspath(files[r.image_id])) for r in todo]
    workers = default_workers() if workers is None else workers
    workers = min(workers, len(tasks))
    if workers <= 1:
        yield from map(_decode_into, tasks)
        return
    # spawn, not fork: the caller may be a multithreaded JAX program, and forking one can deadlock
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(_decode_into, tasks, chunksize=4)
    except BrokenProcessPool as e:
        raise RuntimeError(
            "a decoding worker process died. Workers are spawned and import the main module again: when "
            "preparing from a script, call it under `if __name__ == \"__main__\":`. A worker is also killed when "
            "memory runs out; fewer workers (or workers=0, decoding in this process) need less. Images "
            "decoded so far are kept and a rerun continues from them.") from e
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def remove_decoded(files: dict[str, Path]) -> None:
    """Delete cache files (after the dataset is complete) and the folders they leave empty."""
    for path in files.values():
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass  # other records' files remain in this folder
