"""Native CPU kernels for the encoders' float32 forward: dense layers and attention on MKL's sgemm, through XLA's FFI.

XLA:CPU runs the encoders' GEMMs with Eigen and the attention as two products with the softmax between them, a
RAD-DINO block at 0.85x of PyTorch's speed, which uses MKL and a blocked attention kernel (README, Benchmarks:
``python benchmarks/encoder_parts.py``). ``cpu_kernels.cc`` gives XLA three handlers: a dense layer (MKL's
cblas_sgemm on row slices, with the bias and the activation applied to each slice), and an attention over blocks
of queries whose scores stay in cache, reading q, k and v either as three arrays or as one packed q|k|v GEMM
output. The parallelism is XLA's own intra-op threads; MKL runs sequentially inside them. The handlers are used
only on the CPU backend and only in float32; accelerators and bfloat16 keep XLA.

The source is compiled on first use with the host's C++ compiler (``$CXX``, else ``c++`` or ``g++``) against the
FFI headers jaxlib ships, into ``$XDG_CACHE_HOME/jaxprobe/kernels/<hash>/`` (``~/.cache`` by default; the hash
covers the source, jaxlib's version and the compiler), written to a temporary name and renamed, so concurrent
processes can build it at once. MKL comes from the ``mkl`` wheel (the ``cpu`` extra: ``libmkl_rt`` under the
environment's ``lib/``), loaded privately (RTLD_LOCAL) so a PyTorch in the same process keeps its own MKL.

``JAXPROBE_CPU_KERNELS`` chooses: ``auto`` (the default: native where the compiler, MKL, Linux on x86-64 with AVX2
and FMA are all present, XLA otherwise, and ``describe()`` says which and why, logged by every run), ``native``
(demand them: a ConfigError naming what is missing) or ``xla``. The two paths agree to float32 rounding (the
encoders' parity tests against the PyTorch references hold on either; tests/test_cpu_kernels.py compares them).
"""
from __future__ import annotations

import ctypes
import functools
import glob
import hashlib
import os
import platform
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..config import user_cache_root
from ..errors import ConfigError

ENV = "JAXPROBE_CPU_KERNELS"
CHOICES = ("auto", "native", "xla")
SOURCE = Path(__file__).with_name("cpu_kernels.cc")
ACTIVATIONS = {None: 0, "gelu": 1, "gelu_tanh": 2, "quick_gelu": 3}
QUERY_BLOCK = 256  # queries per attention task: 256 x Tk float32 scores (1.4 MB at RAD-DINO's 1,370 tokens)
CXX_FLAGS = ("-O3", "-mavx2", "-mfma", "-std=c++17", "-shared", "-fPIC")


class Unavailable(Exception):
    """Why the native kernels cannot be used on this host (internal; ``auto`` reports it, ``native`` raises)."""


def choice_from_env(environ=None) -> str:
    """The choice ``JAXPROBE_CPU_KERNELS`` names ("auto" when unset); anything else is a ConfigError."""
    value = (os.environ if environ is None else environ).get(ENV, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise ConfigError(f"environment variable {ENV}={value!r}: expected one of {', '.join(CHOICES)}")
    return value


def _cpu_supported() -> None:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise Unavailable(f"needs Linux on x86-64 (this is {sys.platform} on {platform.machine()})")
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError as e:
        raise Unavailable(f"cannot read /proc/cpuinfo ({e})") from None
    missing = [f for f in ("avx2", "fma") if f not in flags]
    if missing:
        raise Unavailable(f"the CPU lacks {' and '.join(missing)}")


def find_mkl() -> Path:
    """``libmkl_rt`` of the ``mkl`` wheel in this environment (or the user site), newest soname first."""
    roots = dict.fromkeys([sys.prefix, sys.base_prefix, site.getuserbase()])
    found = sorted((p for r in roots for p in glob.glob(os.path.join(r, "lib", "libmkl_rt.so*"))), reverse=True)
    if not found:
        raise Unavailable("MKL is not installed (pip install 'jaxprobe[cpu]', or the mkl wheel)")
    return Path(found[0])


def find_compiler() -> str:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise Unavailable("no C++ compiler ($CXX, c++, g++ or clang++ on PATH)")


def cache_root() -> Path:
    return user_cache_root() / "kernels"


def build(compiler: str, root: Path | None = None) -> Path:
    """The shared library compiled from ``cpu_kernels.cc`` (reused when already built for this source, jaxlib and
    compiler)."""
    import jaxlib

    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise Unavailable(f"the C++ compiler {compiler} does not run ({e})") from None
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, jaxlib.__version__.encode(), compiler.encode(), version.encode(),
                                     " ".join(CXX_FLAGS).encode()])).hexdigest()[:16]
    target = (root or cache_root()) / key / "libjaxprobe_cpu_kernels.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
    os.close(fd)
    cmd = [compiler, *CXX_FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", tmp]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            tail = "\n".join(([line for line in lines if "error" in line] or lines)[:5])
            raise Unavailable(f"compiling {SOURCE.name} failed ({' '.join(cmd)}):\n{tail}")
        os.replace(tmp, target)  # atomic: a concurrent build renames an identical file over it
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _mkl_version(mkl) -> str:
    """"MKL 2026.2" from MKL's version string ("Intel(R) oneAPI Math Kernel Library Version 2026.2-Product ...")."""
    buf = ctypes.create_string_buffer(256)
    try:
        mkl.MKL_Get_Version_String(buf, len(buf))
    except AttributeError:
        return "MKL"
    words = buf.value.decode(errors="replace").split()
    after = words[words.index("Version") + 1] if "Version" in words[:-1] else ""
    return f"MKL {after.split('-')[0]}".strip()


def _load() -> str:
    """Build, load and register the kernels; a description of what was loaded (or Unavailable, saying why not)."""
    _cpu_supported()
    mkl_path, compiler = find_mkl(), find_compiler()
    library = build(compiler)
    try:
        mkl = ctypes.CDLL(str(mkl_path), mode=os.RTLD_LOCAL)
    except OSError as e:
        raise Unavailable(f"cannot load {mkl_path} ({e})") from None
    # MKL_THREADING_SEQUENTIAL (mkl_service.h); must precede MKL's first computation in this process.
    mkl.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
    if mkl.MKL_Set_Threading_Layer(1) != 1:
        raise Unavailable(f"{mkl_path} refused its sequential threading layer")
    lib = ctypes.CDLL(str(library))
    lib.jaxprobe_set_sgemm.argtypes = [ctypes.c_void_p]
    lib.jaxprobe_set_sgemm(ctypes.cast(mkl.cblas_sgemm, ctypes.c_void_p))
    for name in ("jaxprobe_dense", "jaxprobe_attention", "jaxprobe_packed_attention"):
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
    _load.handles = (mkl, lib)  # kept alive with the process
    return f"native ({_mkl_version(mkl)} sgemm, {mkl_path.name}; kernels {library})"


@functools.cache
def _status() -> tuple[str | None, str | None]:
    """``(description, None)`` once the kernels are loaded, or ``(None, why not)``: decided once per process, so
    a host without them does not retry the build at every trace of every layer."""
    try:
        return _load(), None
    except Unavailable as e:
        return None, str(e)


def _native(choice: str) -> str | None:
    """The loaded kernels' description, or None where ``auto`` falls back to XLA's code (ConfigError where
    ``native`` demanded them)."""
    description, reason = _status()
    if description is None and choice == "native":
        raise ConfigError(f"{ENV}=native: the native CPU kernels cannot be used: {reason}")
    return description


def summary() -> str:
    """Which kernels the encoders use on the CPU, and why: "native (...)", "XLA (...)" or "not used (...)" (the
    first word names the path; embedding stores record this string)."""
    choice = choice_from_env()
    if jax.default_backend() != "cpu":
        return f"not used (the backend is {jax.default_backend()})"
    if choice == "xla":
        return f"XLA ({ENV}=xla)"
    description = _native(choice)
    return description or f"XLA (native unavailable: {_status()[1]})"


def describe() -> str:
    """One line for the run log: which kernels the encoders use on the CPU, and why."""
    return f"encoder CPU kernels: {summary()}"


def enabled(dtype) -> bool:
    """Whether the encoders' float32 CPU forward uses the native kernels (decided at trace time)."""
    if jnp.dtype(dtype) != jnp.float32 or jax.default_backend() != "cpu":
        return False
    choice = choice_from_env()
    return choice != "xla" and _native(choice) is not None


def dense(x: jax.Array, kernel: jax.Array, bias: jax.Array, activation: str | None = None) -> jax.Array:
    """``act(x @ kernel + bias)`` for float32 ``x [..., K]``, ``kernel [K, N]``, ``bias [N]`` on the native kernel.

    ``activation``: None, "gelu" (exact erf), "gelu_tanh" or "quick_gelu" (``transformer.activate``'s names)."""
    out = jax.ShapeDtypeStruct(x.shape[:-1] + (kernel.shape[1],), jnp.float32)
    call = jax.ffi.ffi_call("jaxprobe_dense", out, vmap_method="sequential")
    return call(x.astype(jnp.float32), kernel.astype(jnp.float32), bias.astype(jnp.float32),
                activation=np.int64(ACTIVATIONS[activation]))


def attention(q: jax.Array, k: jax.Array, v: jax.Array, query_block: int = QUERY_BLOCK) -> jax.Array:
    """``softmax(q k^T / sqrt(d)) v`` for float32 ``q [B, Tq, H, d]``, ``k, v [B, Tk, H, d]`` on the native kernel."""
    call = jax.ffi.ffi_call("jaxprobe_attention", jax.ShapeDtypeStruct(q.shape, jnp.float32),
                            vmap_method="sequential")
    return call(q, k, v, query_block=np.int64(query_block))


def packed_attention(qkv: jax.Array, query_block: int = QUERY_BLOCK) -> jax.Array:
    """Self-attention from float32 ``qkv [B, T, 3, H, d]`` (one dense layer's q, k and v side by side) ->
    ``[B, T, H, d]`` on the native kernel, which reads the three in place."""
    b, t, _, h, d = qkv.shape
    call = jax.ffi.ffi_call("jaxprobe_packed_attention", jax.ShapeDtypeStruct((b, t, h, d), jnp.float32),
                            vmap_method="sequential")
    return call(qkv, query_block=np.int64(query_block))
