"""Embedding extraction and the on-disk embedding store (see ``store`` for the layout)."""
from .extract import extract, local_mesh, store_path
from .store import Store, StoreError, store_key

__all__ = ["Store", "StoreError", "extract", "local_mesh", "store_key", "store_path"]
