"""Host memory policy: keep freed memory in the process for reuse instead of handing it back to the system.

XLA:CPU allocates a compiled program's large buffers (its temporaries, its outputs) afresh on every execution.
glibc's malloc serves a request above its mmap threshold (32 MiB at the most) with newly mapped pages and unmaps
them on free, so each execution page-faults every page of those buffers in again: the linear segmentation probe's
step (batch 16, 37x37x768 float16 patches) maps, touches and unmaps its 67 MB float32 copy of the patches on every
step: 16,429 page faults, most of the step's time (``python -m benchmarks.heads --only linear_seg --host-memory
keep`` or ``system`` times the step under each). PyTorch's fresh tensors in one process fault alike.

``keep`` (the default of ``python -m jaxprobe.run`` and ``python -m jaxprobe.embed``) makes one arena serve all
threads (``M_ARENA_MAX`` 1), serves every request from that arena's heap instead of separate mappings
(``M_MMAP_MAX`` 0) and never trims the heap (``M_TRIM_THRESHOLD`` at its maximum): once the heap has grown to what
the steps need (a dozen or so steps: JAX frees outputs asynchronously), the buffers come from pages already faulted
in. The numbers computed do not change (the same programs run on the same values); the price is that the process
keeps its peak heap until it exits (the default job's peak resident memory was no higher under it: README,
Benchmarks). ``system`` leaves malloc as the system configured it. Choose with the environment variable
``JAXPROBE_HOST_MEMORY`` (``keep`` | ``system``).

The policy acts only through glibc (Linux); elsewhere ``apply`` reports that it left memory as it was. It must
run before JAX starts its CPU client: threads that already hold an arena of their own keep serving large
requests with fresh mappings, so a late call says so in its description (``describe``, logged by each run).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

from .errors import ConfigError

ENV = "JAXPROBE_HOST_MEMORY"
POLICIES = ("keep", "system")

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
_INT_MAX = 2 ** 31 - 1

_applied: str | None = None  # the policy asked for in this process
_line: str | None = None  # and what apply() said of it


def policy_from_env(environ=None) -> str:
    """The policy ``JAXPROBE_HOST_MEMORY`` names ("keep" when unset); anything else is a ConfigError."""
    value = (os.environ if environ is None else environ).get(ENV, "keep").strip().lower() or "keep"
    if value not in POLICIES:
        raise ConfigError(f"environment variable {ENV}={value!r}: expected one of {', '.join(POLICIES)}")
    return value


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl and macOS have no mallopt of these meanings)
        return libc
    except (OSError, AttributeError, TypeError):
        return None


def _jax_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started and started())


def apply(policy: str | None = None) -> str:
    """Set the host memory ``policy`` (default: from the environment) for this process; a one-line description.

    Idempotent; a second call with another policy is refused (malloc cannot give back what it kept)."""
    global _applied, _line
    policy = policy_from_env() if policy is None else policy
    if policy not in POLICIES:
        raise ConfigError(f"host memory policy {policy!r}: expected one of {', '.join(POLICIES)}")
    if _applied is not None:
        if _applied != policy:
            raise ConfigError(f"host memory policy {policy!r} asked after {_applied!r} was applied in this process")
        return _line
    if policy == "system":
        _applied, _line = policy, "host memory: system malloc (JAXPROBE_HOST_MEMORY=system)"
        return _line
    libc = _libc()
    if libc is None:  # recorded as asked, so asking again is not a conflict; the line says what happened
        _applied, _line = policy, "host memory: system malloc (not glibc: the keep policy needs glibc's mallopt)"
        return _line
    late = _jax_started()
    done = [libc.mallopt(M_ARENA_MAX, 1), libc.mallopt(M_MMAP_MAX, 0), libc.mallopt(M_TRIM_THRESHOLD, _INT_MAX)]
    if not all(done):
        raise RuntimeError(f"glibc mallopt refused the keep policy (returned {done})")
    _applied = policy
    _line = ("host memory: keep (one malloc arena, no separate mappings, no trimming; JAXPROBE_HOST_MEMORY=system "
             "to turn off)")
    if late:
        _line += "; set after JAX had started, so its threads' own arenas still map large buffers afresh"
    return _line


def describe() -> str:
    """One line for a run's log: what ``apply`` did in this process, or that nothing was set."""
    return _line or "host memory: malloc as the process found it (jaxprobe's commands set JAXPROBE_HOST_MEMORY's)"
