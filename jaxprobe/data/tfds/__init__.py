"""Prepared datasets: each source decoded once into a TFDS ArrayRecord dataset, read without TensorFlow.

Builders ``siim_acr_pneumothorax`` and ``cxr_cardiomegaly`` (configs ``default`` from the manual download,
``synthetic`` from the phantom generator, or any ``make_config(...)`` variant) store each image's decoded
8-bit pixels at native size (compressed by ArrayRecord), its masks, label, CTR where defined, patient id, image id and
source path, in patient-level ``train``/``val``/``test`` splits. ``prepare`` builds on first use; the
command line is ``python -m jaxprobe.data.prepare``.

Needs tensorflow-datasets and array-record (``pip install 'jaxprobe[tfds]'``), never TensorFlow.
"""
from .base import INDEX_FILE, LEFT_OUT_FILE, PreparedBuilder, PreparedConfig
from .cardiomegaly import CardiomegalyConfig, CxrCardiomegaly
from .index import IndexRow, example_index, select
from .load import DATASETS, builder_class, get_builder, prepare
from .siim import SiimAcrPneumothorax

__all__ = [
    "DATASETS", "INDEX_FILE", "LEFT_OUT_FILE", "CardiomegalyConfig", "CxrCardiomegaly", "IndexRow", "PreparedBuilder",
    "PreparedConfig", "SiimAcrPneumothorax", "builder_class", "example_index", "get_builder", "prepare", "select",
]
