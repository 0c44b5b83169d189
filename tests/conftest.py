"""Shared test set-up: CPU only, float32 matmuls at full precision, few threads (CI has 2 cores)."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
