"""Shared test set-up: CPU only, one persistent XLA compilation cache per session (shared by the pytest-xdist
workers and the subprocesses the tests start), and a quiet end for each worker."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# One persistent XLA compilation cache for the whole session, handed through the environment to pytest-xdist's
# workers (the controller loads this file before it starts them) and to the subprocesses the tests start: many
# tests compile the same small programs (the same reduced encoders and heads), and on 2 cores compiling is most
# of their time. A cached executable is the one XLA compiled, so no number changes. Under mutmut
# (README, "Mutation testing") every mutant runs its tests in a fresh process, and one fixed folder lets those
# processes reuse the programs that the mutant did not change; otherwise the folder is new and removed at exit.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import tempfile

    if "MUTANT_UNDER_TEST" in os.environ:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "jaxprobe-mutmut-xla")
    else:
        import atexit
        import shutil

        _xla_cache = tempfile.mkdtemp(prefix="jaxprobe-tests-xla-")
        atexit.register(shutil.rmtree, _xla_cache, True)
        os.environ["JAX_COMPILATION_CACHE_DIR"] = _xla_cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_sessionfinish(session):
    """Under pytest-xdist, a worker's last garbage is collected before it reports that it has finished, and
    no later: execnet sends SIGINT to a worker still busy 5 s after the controller stops it, and the interrupt,
    landing inside JAX's gc callback, printed a KeyboardInterrupt traceback at the end of two of three runs."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import gc

        gc.collect()
        gc.disable()
