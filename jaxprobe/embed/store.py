"""The on-disk embedding store: one folder per (encoder identity, preprocessing spec, record list, features).

Layout of ``<root>/<name>-<key>/``::

    meta.json         encoder identity, spec, features, shapes, dtypes, chunk size, side arrays, versions, flags
    ids.txt           record ids, one per line, in row order
    global.npy        [N, D] float32        (plain .npy: np.load(..., mmap_mode="r") reads it)
    patches.npy       [N, G, G, C] float16  (only in stores of heads that read patch tokens)
    masks-<key>.npy   [N, ceil(S*S/8)] uint8, bit-packed masks at the encoder's input size: side arrays, one per
                      (target, resampling) a segmentation analysis asked for, added to an existing store
    targets.npz       labels / CTR and other per-record scalars (optional)
    chunks/NNNNNN.done, chunks/NNNNNN.masks-<key>.done   one marker per finished chunk and part

The key hashes everything that determines the embeddings (not the masks, which are side arrays with their own
key), so a change in any of them never reuses stale embeddings, and the analyses of one image set share one
store: the segmentation analyses add their masks to it, the global-only ones read its global embeddings.
Rows are written with positioned writes of one chunk's region, so resident memory does not grow with N, and a
killed extraction resumes with the chunks (of each part) that have no marker.
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
FORMAT_VERSION = 2  # 2: features and side arrays (masks) in meta.json
ARRAYS = ("global", "patches")  # the features a store may hold; "masks-<key>" arrays are side arrays


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
        self.mask_part: str | None = None

    # ------------------------------------------------------------------ creation / opening
    @classmethod
    def create(cls, path: str | os.PathLike, *, ids: Sequence[str], identity: dict[str, Any], global_dim: int,
               grid: int, patch_dim: int, chunk_size: int, features: Sequence[str] = ARRAYS,
               targets: dict[str, np.ndarray] | None = None, extra: dict[str, Any] | None = None) -> "Store":
        path = Path(path)
        if "global" not in features or set(features) - set(ARRAYS):
            raise StoreError(f"features must be ('global',) or ('global', 'patches'), got {tuple(features)}")
        (path / "chunks").mkdir(parents=True, exist_ok=True)
        n = len(ids)
        shapes, dtypes = layout(n, global_dim, grid, patch_dim, features)
        _allocate(path, shapes, dtypes)
        (path / IDS).write_text("".join(f"{i}\n" for i in ids))
        if targets:
            for k, v in targets.items():
                if len(v) != n:
                    raise StoreError(f"target {k!r} has {len(v)} values for {n} records")
            np.savez(path / "targets.npz", **{k: np.asarray(v) for k, v in targets.items()})
        meta = {
            "format_version": FORMAT_VERSION, "n": n, "chunk_size": chunk_size,
            "n_chunks": (n + chunk_size - 1) // chunk_size, "features": list(features), "shapes": shapes,
            "dtypes": dtypes, "sides": {}, "identity": identity, "extra": extra or {},
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "versions": _versions(), "complete": False,
        }
        store = cls(path, meta)
        store._write_meta()  # meta.json appears last and atomically: its presence means the files exist
        return store

    def _write_meta(self) -> None:
        tmp = self.path / f"{META}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
        tmp.replace(self.path / META)

    def reload(self) -> None:
        self.meta = json.loads((self.path / META).read_text())

    # ------------------------------------------------------------------ side arrays (masks)
    def add_masks(self, key: str, size: int, settings: dict[str, Any]) -> str:
        """Add the side array ``masks-<key>`` (bit-packed [N, S*S] masks) if the store has none of that key;
        returns its part name. Its chunks are filled by the extraction like the embeddings', without the encoder
        where the embeddings are already there."""
        part = f"masks-{key}"
        if part not in self.meta["sides"]:
            shape, dtype = mask_layout(self.n, size)
            _allocate(self.path, {part: shape}, {part: dtype})
            self.meta["sides"][part] = {"shape": shape, "dtype": dtype, "size": size, "settings": settings,
                                        "complete": False}
            self._write_meta()
        return part

    def bind_masks(self, part: str | None) -> "Store":
        """Which side array ``masks()`` reads (the analysis's target and resampling)."""
        if part is not None and part not in self.meta["sides"]:
            raise StoreError(f"{self.path}: no side array {part}")
        self.mask_part = part
        return self

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

    def _arrays(self) -> dict[str, tuple[list, str]]:
        """Every array of the store, embeddings and side arrays: name -> (shape, dtype)."""
        out = {name: (shape, self.meta["dtypes"][name]) for name, shape in self.meta["shapes"].items()}
        out.update({part: (side["shape"], side["dtype"]) for part, side in self.meta.get("sides", {}).items()})
        return out

    def validate(self, *, ids: Sequence[str] | None = None, identity: dict[str, Any] | None = None) -> None:
        """Every array has the shape and dtype of the metadata and is not truncated; ids and identity match."""
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise StoreError(f"{self.path}: store format {self.meta.get('format_version')}, this jaxprobe writes "
                             f"{FORMAT_VERSION}; remove the folder to extract again")
        for name, (shape, dtype) in self._arrays().items():
            f = self.path / f"{name}.npy"
            if not f.is_file():
                raise StoreError(f"{f}: missing")
            header, got_shape, got_dtype = _npy_header_len(f)
            if list(got_shape) != shape or got_dtype != np.dtype(dtype):
                raise StoreError(f"{f}: header says {list(got_shape)} {got_dtype}, metadata says {shape} {dtype}")
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

    def _marker(self, c: int, part: str | None = None) -> Path:
        return self.path / "chunks" / (f"{c:06d}.done" if part is None else f"{c:06d}.{part}.done")

    def chunk_done(self, c: int, part: str | None = None) -> bool:
        return self._marker(c, part).exists()

    def pending_chunks(self, part: str | None = None) -> list[int]:
        """Chunks without a marker: of the embeddings (``part`` None) or of a side array."""
        return [c for c in range(self.meta["n_chunks"]) if not self.chunk_done(c, part)]

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
        total = 0
        for name, (shape, dtype) in self._arrays().items():
            part = name if name in self.meta.get("sides", {}) else None
            rows = sum(self.chunk_rows(c)[1] - self.chunk_rows(c)[0] for c in self.pending_chunks(part))
            total += rows * int(np.prod(shape[1:])) * np.dtype(dtype).itemsize
        return total

    def mark_done(self, c: int, part: str | None = None) -> None:
        self._marker(c, part).write_text("")

    def finalize(self, parts: Sequence[str | None] = (None,)) -> bool:
        """Mark the embeddings (``None``) and the given side arrays complete once every chunk of each has its
        marker (any process may call this); True when all of them are."""
        if any(self.pending_chunks(part) for part in parts):
            return False
        self.reload()  # another process may have added a side array meanwhile
        changed = False
        for part in parts:
            entry = self.meta if part is None else self.meta["sides"][part]
            if not entry.get("complete"):
                entry["complete"] = True
                entry["completed_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
                changed = True
        if changed:
            self._write_meta()
        return True

    def part_complete(self, part: str | None = None) -> bool:
        entry = self.meta if part is None else self.meta.get("sides", {}).get(part, {})
        return bool(entry.get("complete")) and not self.pending_chunks(part)

    @property
    def complete(self) -> bool:
        """The embeddings, and the bound masks if any, are all written."""
        return self.part_complete() and (self.mask_part is None or self.part_complete(self.mask_part))

    # ------------------------------------------------------------------ readers
    def array(self, name: str) -> np.ndarray:
        """A read-only memory map (plain numpy); raises if that part of the store is not complete. ``"masks"`` is
        the bound side array (packed bits), or the store's only one."""
        if name == "masks":
            sides = sorted(p for p in self.meta.get("sides", {}) if p.startswith("masks-"))
            if not self.mask_part and len(sides) != 1:
                raise StoreError(f"{self.path}: {len(sides)} mask side arrays {sides}; bind one (bind_masks)")
            name = self.mask_part or sides[0]
        part = name if name in self.meta.get("sides", {}) else None
        if part is None and name not in self.meta["shapes"]:
            raise StoreError(f"{self.path}: holds {sorted(self._arrays())}, not {name!r}" + (
                " (a store of global embeddings only: analyses with patch-token heads build their own)"
                if name == "patches" else ""))
        if not self.part_complete(part):
            raise StoreError(f"{self.path}: {name} incomplete ({len(self.pending_chunks(part))} chunks missing); "
                             "re-run the extraction to resume it")
        return np.load(self.path / f"{name}.npy", mmap_mode="r")

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.meta.get("features", ARRAYS))

    @property
    def global_embeddings(self) -> np.ndarray:
        return self.array("global")

    @property
    def patches(self) -> np.ndarray:
        return self.array("patches")

    @property
    def mask_size(self) -> int | None:
        return self.meta["sides"][self.mask_part]["size"] if self.mask_part else None

    def masks(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """Unpacked bool masks ``[k, S, S]`` of the bound side array for the given rows."""
        s = self.mask_size
        if not s:
            raise StoreError(f"{self.path}: no masks bound (the analysis has no mask target)")
        packed = self.array(self.mask_part)
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
        s = store.mask_size
        if not s:
            raise StoreError(f"{store.path}: no masks bound (the analysis has no mask target)")
        self.store = store
        self.shape = (store.n, s, s)
        self.dtype = np.dtype(bool)
        self.ndim = 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        return self.store.masks(np.asarray(rows))


def layout(n: int, global_dim: int, grid: int, patch_dim: int, features: Sequence[str] = ARRAYS
           ) -> tuple[dict[str, list], dict[str, str]]:
    """Shapes and dtypes of a store's embedding arrays: global float32 [N, D], patch tokens float16 [N, G, G, C]."""
    shapes = {"global": [n, global_dim], "patches": [n, grid, grid, patch_dim]}
    dtypes = {"global": "float32", "patches": "float16"}
    return {k: v for k, v in shapes.items() if k in features}, {k: v for k, v in dtypes.items() if k in features}


def mask_layout(n: int, size: int) -> tuple[list, str]:
    """Shape and dtype of a mask side array: bit-packed [N, ceil(S*S/8)] uint8."""
    return [n, (size * size + 7) // 8], "uint8"


def nbytes(shapes: dict[str, list], dtypes: dict[str, str]) -> int:
    return sum(int(np.prod(shape)) * np.dtype(dtypes[name]).itemsize for name, shape in shapes.items())


def _allocate(path: Path, shapes: dict[str, list], dtypes: dict[str, str]) -> None:
    """Sparse ``.npy`` files of the given shapes, after checking the disk can hold them once written."""
    needed = nbytes(shapes, dtypes)
    if needed > _free(path):  # the arrays are sparse files: they take their space as chunks are written
        raise StoreError(f"{path}: the store needs {needed / 2**20:.0f} MiB and {_free(path) / 2**20:.0f} MiB "
                         "are free; free space or point cache_dir elsewhere")
    for name, shape in shapes.items():
        np.lib.format.open_memmap(path / f"{name}.npy", mode="w+", dtype=dtypes[name], shape=tuple(shape)).flush()


def _versions() -> dict[str, str]:
    import jax

    from ..encoders import cpu_kernels

    return {"jax": jax.__version__, "numpy": np.__version__,
            "cpu_kernels": cpu_kernels.summary()}
