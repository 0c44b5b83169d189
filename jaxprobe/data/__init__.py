"""Radiographs in, records out: reading, preprocessing, RLE codecs, sources, CTR, splits, synthetic phantoms."""
from .cardiomegaly import cardiomegaly_records, nih_cardiomegaly_records
from .ctr import ctr, horizontal_extent
from .errors import DataError
from .images import image_shape, read_dicom_header, read_image
from .transforms import geometry, preprocess, preprocess_batch, preprocess_mask, preprocess_mask_batch
from .records import Record
from .siim import classification_set, segmentation_set, siim_records
from .splits import patient_splits, read_split_file, resolve_splits, write_splits
from .synth import make_synthetic

__all__ = [
    "DataError", "Record", "cardiomegaly_records", "classification_set", "ctr", "geometry", "horizontal_extent",
    "image_shape", "make_synthetic", "nih_cardiomegaly_records", "patient_splits", "preprocess", "preprocess_batch",
    "preprocess_mask", "preprocess_mask_batch", "read_dicom_header", "read_image", "read_split_file",
    "resolve_splits", "segmentation_set", "siim_records", "write_splits",
]
