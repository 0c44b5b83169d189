"""The on-disk embedding store: one folder per (encoder identity, preprocessing spec, record list).

Layout of ``<root>/<name>-<key>/``::

    meta.json         encoder identity, spec, shapes, dtypes, chunk size, versions, creation time, complete flag
    ids.txt           record ids, one per line, in row order
    global.npy        [N, D] float32        (plain .npy: np.load(..., mmap_mode="r") reads it)
    patches.npy       [N, G, G, C] float16
    masks.npy         [N, ceil(S*S/8)] uint8, bit-packed masks at the encoder's input size (optional)
    targets.npz       labels / CTR and other per-record scalars (optional)
    chunks/NNNNNN.done  one marker per finished chunk, written after that chunk's rows are flushed

The key hashes everything that determines the numbers, so a change in any of them never reuses stale
embeddings. Rows are written through short-lived memory maps of one chunk's region, so resident memory does
not grow with N, and a killed extraction resumes from the first chunk without a marker.
"""
from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import StoreError

META = "meta.json"
IDS = "ids.txt"
FORMAT_VERSION = 1
ARRAYS = ("global", "patches", "masks")


def store_key(identity: dict[str, Any], ids: Sequence[str], extra: dict[str, Any] | None = None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(identity, sort_keys=True, default=str).encode())
    h.update(json.dumps(extra or {}, sort_keys=True, default=str).encode())
    for i in ids:
        h.update(str(i).encode() + b"\n")
    return h.hexdigest()[:20]


def _free(path: Path) -> int:
    return shutil.disk_usage(path).free


def _npy_header_len(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(f)
        if fortran:
            raise StoreError(f"{path}: Fortran-ordered arrays are not supported")
        return f.tell(), tuple(shape), np.dtype(dtype)


class Store:
    """A (possibly partial) store folder. Create with :meth:`create`, open with :meth:`open`."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = Path(path)
        self.meta = meta
        self.n = int(meta["n"])
        self.chunk_size = int(meta["chunk_size"])

    # ------------------------------------------------------------------ creation / opening
    @classmethod
    def create(cls, path: str | os.PathLike, *, ids: Sequence[str], identity: dict[str, Any], global_dim: int,
               grid: int, patch_dim: int, chunk_size: int, mask_size: int | None = None,
               targets: dict[str, np.ndarray] | None = None, extra: dict[str, Any] | None = None) -> "Store":
        path = Path(path)
        (path / "chunks").mkdir(parents=True, exist_ok=True)
        n = len(ids)
        shapes = {"global": [n, global_dim], "patches": [n, grid, grid, patch_dim]}
        dtypes = {"global": "float32", "patches": "float16"}
        if mask_size:
            shapes["masks"] = [n, (mask_size * mask_size + 7) // 8]
            dtypes["masks"] = "uint8"
        needed = sum(int(np.prod(shape)) * np.dtype(dtypes[name]).itemsize for name, shape in shapes.items())
        if needed > _free(path):  # the arrays are sparse files: they take their space as chunks are written
            raise StoreError(f"{path}: the store needs {needed / 2**20:.0f} MiB and {_free(path) / 2**20:.0f} MiB "
                             "are free; free space or point cache_dir elsewhere")
        for name, shape in shapes.items():
            np.lib.format.open_memmap(path / f"{name}.npy", mode="w+", dtype=dtypes[name], shape=tuple(shape)).flush()
        (path / IDS).write_text("".join(f"{i}\n" for i in ids))
        if targets:
            for k, v in targets.items():
                if len(v) != n:
                    raise StoreError(f"target {k!r} has {len(v)} values for {n} records")
            np.savez(path / "targets.npz", **{k: np.asarray(v) for k, v in targets.items()})
        meta = {
            "format_version": FORMAT_VERSION, "n": n, "chunk_size": chunk_size,
            "n_chunks": (n + chunk_size - 1) // chunk_size, "shapes": shapes, "dtypes": dtypes,
            "mask_size": mask_size, "identity": identity, "extra": extra or {},
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": _versions(), "complete": False,
        }
        tmp = path / (META + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
        tmp.replace(path / META)  # meta.json appears last and atomically: its presence means the files exist
        return cls(path, meta)

    @classmethod
    def open(cls, path: str | os.PathLike, *, ids: Sequence[str] | None = None,
             identity: dict[str, Any] | None = None) -> "Store":
        path = Path(path)
        try:
            meta = json.loads((path / META).read_text())
        except FileNotFoundError:
            raise StoreError(f"{path / META} not found: not an embedding store") from None
        except json.JSONDecodeError as e:
            raise StoreError(f"{path / META}: unreadable ({e})") from None
        store = cls(path, meta)
        store.validate(ids=ids, identity=identity)
        return store

    def validate(self, *, ids: Sequence[str] | None = None, identity: dict[str, Any] | None = None) -> None:
        """Every array has the shape and dtype of the metadata and is not truncated; ids and identity match."""
        for name, shape in self.meta["shapes"].items():
            f = self.path / f"{name}.npy"
            if not f.is_file():
                raise StoreError(f"{f}: missing")
            header, got_shape, got_dtype = _npy_header_len(f)
            if list(got_shape) != shape or got_dtype != np.dtype(self.meta["dtypes"][name]):
                raise StoreError(f"{f}: header says {list(got_shape)} {got_dtype}, metadata says "
                                 f"{shape} {self.meta['dtypes'][name]}")
            expected = header + int(np.prod(shape)) * got_dtype.itemsize
            size = f.stat().st_size
            if size != expected:
                raise StoreError(f"{f}: {size} bytes on disk, expected {expected} — truncated or overwritten")
        stored_ids = self.ids
        if len(stored_ids) != self.n:
            raise StoreError(f"{self.path / IDS}: {len(stored_ids)} ids for {self.n} rows")
        if ids is not None and list(map(str, ids)) != stored_ids:
            raise StoreError(f"{self.path}: the record ids differ from the requested record list")
        if identity is not None and json.loads(json.dumps(identity, default=str)) != self.meta["identity"]:
            raise StoreError(f"{self.path}: built by a different encoder/preprocessing than requested")

    # ------------------------------------------------------------------ chunks
    @property
    def ids(self) -> list[str]:
        return (self.path / IDS).read_text().splitlines()

    def chunk_rows(self, c: int) -> tuple[int, int]:
        return c * self.chunk_size, min(self.n, (c + 1) * self.chunk_size)

    def _marker(self, c: int) -> Path:
        return self.path / "chunks" / f"{c:06d}.done"

    def chunk_done(self, c: int) -> bool:
        return self._marker(c).exists()

    def pending_chunks(self) -> list[int]:
        return [c for c in range(self.meta["n_chunks"]) if not self.chunk_done(c)]

    def write_rows(self, start: int, arrays: dict[str, np.ndarray]) -> None:
        """Write rows [start, start+len) of each array with positioned writes (not a memory map: on a full disk a
        write through a map of a sparse file kills the process with SIGBUS, a write call raises ENOSPC), then
        flush them to disk before the chunk's marker is written."""
        for name, values in arrays.items():
            f = self.path / f"{name}.npy"
            header, shape, dtype = _npy_header_len(f)
            row = int(np.prod(shape[1:])) * dtype.itemsize
            values = np.ascontiguousarray(values, dtype=dtype)
            if values.shape[1:] != tuple(shape[1:]) or start + len(values) > shape[0]:
                raise StoreError(f"{f}: cannot write {values.shape} at row {start} into {shape}")
            data, offset = memoryview(values).cast("B"), header + start * row
            try:
                fd = os.open(f, os.O_WRONLY)
                try:
                    while data:
                        written = os.pwrite(fd, data, offset)
                        data, offset = data[written:], offset + written
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise StoreError(f"{f}: the disk is full ({e.strerror}) writing rows {start}..{start + len(values)}"
                                     f"; {self.missing_bytes() / 2**20:.0f} MiB of the store are still to be "
                                     f"written and {_free(self.path) / 2**20:.0f} MiB are free. Free space (or "
                                     "move cache_dir) and run again: finished chunks are kept") from None
                raise StoreError(f"{f}: cannot write rows {start}..{start + len(values)}: {e.strerror or e}") from None

    def missing_bytes(self) -> int:
        """Bytes of the chunks not yet written (the space a resumed extraction still needs, at most)."""
        pending = self.pending_chunks()
        per_row = sum(int(np.prod(shape[1:])) * np.dtype(self.meta["dtypes"][name]).itemsize
                      for name, shape in self.meta["shapes"].items())
        return sum(self.chunk_rows(c)[1] - self.chunk_rows(c)[0] for c in pending) * per_row

    def mark_done(self, c: int) -> None:
        self._marker(c).write_text("")

    def finalize(self) -> bool:
        """Mark the store complete once every chunk has its marker (any process may call this)."""
        if self.pending_chunks():
            return False
        if not self.meta.get("complete"):
            self.meta["complete"] = True
            self.meta["completed_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            tmp = self.path / f"{META}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
            tmp.replace(self.path / META)
        return True

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete")) and not self.pending_chunks()

    # ------------------------------------------------------------------ readers
    def array(self, name: str) -> np.ndarray:
        """A read-only memory map (plain numpy); raises if the store is not complete."""
        if not self.complete:
            raise StoreError(f"{self.path}: incomplete ({len(self.pending_chunks())} chunks missing); "
                             "re-run the extraction to resume it")
        return np.load(self.path / f"{name}.npy", mmap_mode="r")

    @property
    def global_embeddings(self) -> np.ndarray:
        return self.array("global")

    @property
    def patches(self) -> np.ndarray:
        return self.array("patches")

    def masks(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """Unpacked bool masks ``[k, S, S]`` for the given rows."""
        s = self.meta.get("mask_size")
        if not s:
            raise StoreError(f"{self.path}: no masks stored")
        packed = self.array("masks")
        rows = packed[index] if index is not None else packed
        rows = np.atleast_2d(rows)
        return np.unpackbits(rows, axis=1, count=s * s).reshape(len(rows), s, s).astype(bool)

    def mask_rows(self) -> "PackedMasks":
        """The masks as a row-indexable array-like (``[rows] -> bool [k, S, S]``), unpacked per access: what a
        training loop that gathers minibatches by index needs, without unpacking the whole store."""
        return PackedMasks(self)

    def targets(self) -> dict[str, np.ndarray]:
        f = self.path / "targets.npz"
        if not f.is_file():
            return {}
        with np.load(f) as z:
            return {k: z[k] for k in z.files}

    def batches(self, index: np.ndarray, batch_size: int, names: Sequence[str] = ("global", "patches"),
                ) -> Iterator[dict[str, np.ndarray]]:
        """Minibatches gathered by index straight from the memory maps (sorted within a batch for locality)."""
        arrays = {n: self.array(n) for n in names}
        index = np.asarray(index)
        for s in range(0, len(index), batch_size):
            b = index[s:s + batch_size]
            order = np.argsort(b, kind="stable")
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            yield {"index": b, **{n: np.asarray(a[b[order]])[inverse] for n, a in arrays.items()}}

    def to_device(self, names: Sequence[str] = ("global", "patches"), sharding=None) -> dict:
        """The whole store on the accelerator (when it fits), optionally sharded."""
        import jax

        return {n: jax.device_put(np.asarray(self.array(n)), sharding) for n in names}


class PackedMasks:
    def __init__(self, store: Store):
        s = store.meta.get("mask_size")
        if not s:
            raise StoreError(f"{store.path}: no masks stored")
        self.store = store
        self.shape = (store.n, s, s)
        self.dtype = np.dtype(bool)
        self.ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        return self.store.masks(np.asarray(rows))


def _versions() -> dict[str, str]:
    import jax

    return {"jax": jax.__version__, "numpy": np.__version__}
