"""Shared test set-up: CPU only, float32 matmuls at full precision, few threads (CI has 2 cores)."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

if "MUTANT_UNDER_TEST" in os.environ:
    # Under mutmut (README, "Mutation testing") every mutant runs its tests in a fresh process; a persistent
    # compilation cache lets those processes reuse the XLA programs that the mutant did not change. Outside
    # mutmut this block does nothing.
    import tempfile

    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "jaxprobe-mutmut-xla"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
