"""Padded batches of stored rows, gathered in the background and sharded over a device mesh's ``data`` axis.

Data stay where they are (numpy arrays or ``np.memmap``): each batch is gathered with sorted row indices (reads
in file order), padded to the batch size with zero-weight rows (one compiled shape; BatchNorm ignores the
padding), and sharded over the ``data`` axis. ``on_device`` copies the needed rows to the devices once instead.
"""
from __future__ import annotations

import collections
import concurrent.futures
from typing import Iterator, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from .config import ProbeData, TrainConfig


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named ``data`` over the given (default: all) devices."""
    return Mesh(np.asarray(devices if devices is not None else jax.devices()), ("data",))


def check_mesh(name: str, mesh: Mesh, config: TrainConfig) -> None:
    """Batches split evenly over the mesh, or the run stops before it starts."""
    if "data" not in mesh.axis_names:
        raise ValueError(f"{name}: the mesh needs a 'data' axis, has {mesh.axis_names}")
    n = mesh.shape["data"]
    for key in ("batch_size", "eval_batch_size"):
        if getattr(config, key) % n:
            raise ValueError(f"{name}: TrainConfig.{key}={getattr(config, key)} must be a multiple of the {n} "
                             "devices on the mesh's 'data' axis")


class Batches:
    """Gathers padded batches (features, targets, weights) sharded over the mesh's ``data`` axis."""

    def __init__(self, data: ProbeData, inputs: tuple[str, ...], mesh: Mesh, on_device: bool,
                 rows: np.ndarray):
        self.sharding = NamedSharding(mesh, P("data"))
        self.arrays = [data.features[name] for name in inputs] + [data.targets]
        self.on_device = on_device
        if on_device:
            self.rows = np.unique(rows)
            replicated = NamedSharding(mesh, P())
            self.device_arrays = [jax.device_put(np.asarray(a[self.rows]), replicated) for a in self.arrays]
            self._take = jax.jit(lambda arrays, at: [a[at] for a in arrays], out_shardings=self.sharding)

    def plan(self, indices: np.ndarray, batch_size: int, drop_last: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
        """Split ``indices`` (in order) into batches of sorted rows, the last padded with zero-weight rows (or
        left out with ``drop_last``, as a PyTorch DataLoader(drop_last=True) does)."""
        batches = []
        stop = len(indices) - len(indices) % batch_size if drop_last else len(indices)
        for start in range(0, stop, batch_size):
            rows = np.sort(indices[start:start + batch_size])
            weights = np.zeros(batch_size, np.float32)
            weights[:len(rows)] = 1.0
            batches.append((np.concatenate([rows, np.repeat(rows[-1:], batch_size - len(rows))]), weights))
        return batches

    def gather(self, batch: tuple[np.ndarray, np.ndarray]):
        rows, weights = batch
        if self.on_device:
            arrays = self._take(self.device_arrays, jax.device_put(np.searchsorted(self.rows, rows), self.sharding))
        else:
            arrays = [jax.device_put(np.asarray(a[rows]), self.sharding) for a in self.arrays]
        return tuple(arrays[:-1]), arrays[-1], jax.device_put(weights, self.sharding)

    def __call__(self, indices: np.ndarray, batch_size: int, depth: int = 2, drop_last: bool = False) -> Iterator:
        """Batches in order, gathered by a background thread ``depth`` batches ahead of the consumer."""
        plan = self.plan(indices, batch_size, drop_last)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = collections.deque()
            for batch in plan:
                pending.append((batch, pool.submit(self.gather, batch)))
                if len(pending) > depth:
                    b, future = pending.popleft()
                    yield b, future.result()
            while pending:
                b, future = pending.popleft()
                yield b, future.result()
