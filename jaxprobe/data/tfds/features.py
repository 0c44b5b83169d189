"""Image and mask features that TFDS stores as zlib-compressed raw arrays, compressible in worker processes.

``tfds.features.Image`` needs TensorFlow to encode PNGs; ``tfds.features.Tensor(encoding=ZLIB)`` does not, and
stores ``zlib.compress(array.tobytes())`` plus the shape. TFDS calls ``encode_example`` for every example in
the one process that writes the files, and zlib at its default level costs about three times as long as
decoding a SIIM DICOM (about 30 ms against 10 ms for a 1024 x 1024 film), so left there it would serialise
the whole preparation. ``compress_array`` does that compression wherever the image was decoded (a worker
process) and ``ZlibTensor`` writes the result through unchanged: the bytes on disk are exactly what
``Tensor(encoding=ZLIB)`` would have written, and the dataset's ``features.json`` names the plain ``Tensor``,
so the prepared dataset reads back with stock tensorflow-datasets (no jaxprobe, no TensorFlow).
"""
from __future__ import annotations

import zlib
from typing import NamedTuple

import numpy as np
import tensorflow_datasets as tfds


class ZlibArray(NamedTuple):
    """An array already encoded as ``Tensor(encoding=ZLIB)`` stores it."""

    payload: bytes  # zlib.compress(array.tobytes()), C order
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name


def compress_array(array: np.ndarray) -> ZlibArray:
    array = np.ascontiguousarray(array)
    # zlib's default level (6), the one Tensor(encoding=ZLIB) uses, so that both paths write the same bytes
    return ZlibArray(zlib.compress(array.tobytes()), tuple(int(n) for n in array.shape), array.dtype.name)


def decompress_array(value: ZlibArray) -> np.ndarray:
    return np.frombuffer(zlib.decompress(value.payload), dtype=value.dtype).reshape(value.shape)


_TENSOR_CLASS_NAME = f"{tfds.features.Tensor.__module__}.{tfds.features.Tensor.__name__}"


class ZlibTensor(tfds.features.Tensor):
    """``Tensor(shape, dtype, encoding=ZLIB)`` that also accepts a ``ZlibArray`` and writes it as is."""

    def __init__(self, *, shape, dtype, doc=None):
        super().__init__(shape=shape, dtype=dtype, encoding=tfds.features.Encoding.ZLIB, doc=doc)

    def encode_example(self, example_data):
        if not isinstance(example_data, ZlibArray):
            return super().encode_example(example_data)
        if np.dtype(example_data.dtype) != self.np_dtype:
            raise ValueError(f"compressed array has dtype {example_data.dtype}; the feature stores {self.np_dtype}")
        if len(example_data.shape) != len(self.shape) or any(
            want is not None and want != got for want, got in zip(self.shape, example_data.shape)
        ):
            raise ValueError(f"compressed array has shape {example_data.shape}; the feature stores {self.shape}")
        if self._dynamic_shape:
            return {"value": example_data.payload, "shape": example_data.shape}
        return example_data.payload

    @property
    def _fully_qualified_class_name(self) -> str:
        # Saved into features.json: readers rebuild a stock Tensor with the same shape, dtype and encoding, which
        # decodes these bytes identically. (tests/test_tfds.py checks the file and a jaxprobe-free read.)
        return _TENSOR_CLASS_NAME
