"""jaxprobe.encoders.cpu_kernels: the native dense and attention kernels against float64 numpy and scipy oracles,
the encoders actually using them on the CPU (and not under ``JAXPROBE_CPU_KERNELS=xla``), both paths agreeing with
transformers' Dinov2Model, the build cache, and the choice's errors. The encoder parity tests of the other files
run on the native kernels too wherever they are available (the default ``auto``); the dev install brings MKL."""
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.special

from jaxprobe.encoders import cpu_kernels
from jaxprobe.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
native = pytest.mark.skipif(not (sys.platform == "linux" and os.uname().machine == "x86_64"),
                            reason="the native kernels are built for Linux on x86-64")


def _oracle_dense(x, w, b, activation):
    y = x.astype(np.float64) @ w.astype(np.float64) + b
    if activation == "gelu":
        return 0.5 * y * (1 + scipy.special.erf(y / np.sqrt(2)))
    if activation == "gelu_tanh":
        return 0.5 * y * (1 + np.tanh(np.sqrt(2 / np.pi) * (y + 0.044715 * y ** 3)))
    if activation == "quick_gelu":
        return y * scipy.special.expit(1.702 * y)
    return y


@native
@pytest.mark.parametrize("activation", [None, "gelu", "gelu_tanh", "quick_gelu"])
def test_dense_matches_float64(activation):
    loaded, why_not = cpu_kernels._status()  # fails here (not skipped) without compiler or MKL on Linux x86-64
    assert loaded, why_not
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 37, 20)).astype(np.float32) * 3  # 111 rows, a width that is not a multiple of 8
    w = rng.standard_normal((20, 13)).astype(np.float32)
    b = rng.standard_normal(13).astype(np.float32)
    got = np.asarray(jax.jit(lambda *a: cpu_kernels.dense(*a, activation=activation))(x, w, b))
    want = _oracle_dense(x, w, b, activation)
    assert got.shape == (3, 37, 13)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * np.abs(want).max())


@native
@pytest.mark.parametrize("query_block", [1, 16, 256])
def test_attention_matches_float64(query_block):
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 37, 3, 8)).astype(np.float32) * 2
    k, v = (rng.standard_normal((2, 45, 3, 8)).astype(np.float32) * 2 for _ in range(2))  # Tk != Tq, not 8k
    got = np.asarray(jax.jit(lambda *a: cpu_kernels.attention(*a, query_block=query_block))(q, k, v))
    s = np.einsum("bqhd,bkhd->bhqk", q.astype(np.float64), k.astype(np.float64)) / np.sqrt(8)
    p = scipy.special.softmax(s, axis=-1)
    want = np.einsum("bhqk,bkhd->bqhd", p, v.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@native
def test_kernels_reject_shapes_they_do_not_handle():
    x = np.ones((4, 5), np.float32)
    with pytest.raises(Exception, match="jaxprobe_dense: expected x"):
        cpu_kernels.dense(x, np.ones((6, 3), np.float32), np.ones(3, np.float32)).block_until_ready()
    with pytest.raises(Exception, match="jaxprobe_attention: expected q"):
        cpu_kernels.attention(np.ones((1, 4, 2, 8), np.float32), np.ones((1, 5, 2, 4), np.float32),
                              np.ones((1, 5, 2, 4), np.float32)).block_until_ready()


NAMES = ("jaxprobe_dense", "jaxprobe_attention", "jaxprobe_packed_attention")


def _custom_calls(monkeypatch, choice, name, size):
    from jaxprobe import encoders

    monkeypatch.setenv(cpu_kernels.ENV, choice)
    enc = encoders.load(name, width=64, depth=1, input_size=size)
    hlo = jax.jit(enc.embed).lower(np.zeros((1, size, size, 3), np.float32)).as_text()
    return {n for n in NAMES if re.search(rf"@{n}\b", hlo)}


@native
@pytest.mark.parametrize("name,size,calls", [
    ("rad_dino", 70, {"jaxprobe_dense", "jaxprobe_packed_attention"}),
    # SigLIP's attention-pooling head: a probe query attends to the tokens (separate q, k and v)
    ("chexagent", 64, {"jaxprobe_dense", "jaxprobe_packed_attention", "jaxprobe_attention"}),
])
def test_the_encoders_use_the_kernels_on_the_cpu_unless_told_xla(monkeypatch, name, size, calls):
    assert _custom_calls(monkeypatch, "auto", name, size) == calls
    assert _custom_calls(monkeypatch, "xla", name, size) == set()


@native
def test_packed_attention_matches_float64():
    rng = np.random.default_rng(2)
    qkv = rng.standard_normal((2, 29, 3, 2, 8)).astype(np.float32) * 2
    got = np.asarray(jax.jit(lambda x: cpu_kernels.packed_attention(x, query_block=16))(qkv))
    q, k, v = (qkv[:, :, i].astype(np.float64) for i in range(3))
    p = scipy.special.softmax(np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(8), axis=-1)
    want = np.einsum("bhqk,bkhd->bqhd", p, v)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@native
@pytest.mark.parametrize("choice", ["native", "xla"])
def test_both_paths_pass_the_converters_parity_check_against_transformers(monkeypatch, tmp_path, choice):
    pytest.importorskip("transformers")
    import convert
    from reference_models import make_dinov2

    monkeypatch.setenv(cpu_kernels.ENV, choice)
    src = make_dinov2(tmp_path / "src", full=False, seed=3)
    report = convert.convert("rad_dino", src, tmp_path / "out", n_images=2)
    assert report["passed"] is True and report["worst_rel"] <= 1e-5, report


def test_the_choice_comes_from_the_environment(monkeypatch):
    assert cpu_kernels.choice_from_env({}) == "auto"
    assert cpu_kernels.choice_from_env({cpu_kernels.ENV: " XLA "}) == "xla"
    with pytest.raises(ConfigError, match=r"^environment variable JAXPROBE_CPU_KERNELS='fast': expected one of "
                                          r"auto, native, xla$"):
        cpu_kernels.choice_from_env({cpu_kernels.ENV: "fast"})
    monkeypatch.setenv(cpu_kernels.ENV, "xla")
    assert cpu_kernels.describe() == "encoder CPU kernels: XLA (JAXPROBE_CPU_KERNELS=xla)"
    assert not cpu_kernels.enabled(np.float32)


def test_native_demanded_but_unavailable_is_a_config_error_and_auto_says_why(monkeypatch):
    calls = []

    def missing():
        calls.append(1)
        raise cpu_kernels.Unavailable("MKL is not installed (pip install 'jaxprobe[cpu]', or the mkl wheel)")

    monkeypatch.setattr(cpu_kernels, "_load", missing)
    cpu_kernels._status.cache_clear()
    try:
        monkeypatch.setenv(cpu_kernels.ENV, "native")
        with pytest.raises(ConfigError, match="JAXPROBE_CPU_KERNELS=native: the native CPU kernels cannot be used: "
                                              "MKL is not installed"):
            cpu_kernels.enabled(np.float32)
        with pytest.raises(ConfigError, match="MKL is not installed"):
            cpu_kernels.describe()
        monkeypatch.setenv(cpu_kernels.ENV, "auto")
        assert not cpu_kernels.enabled(np.float32)
        assert cpu_kernels.describe() == ("encoder CPU kernels: XLA (native unavailable: MKL is not installed "
                                          "(pip install 'jaxprobe[cpu]', or the mkl wheel))")
        assert len(calls) == 1  # tried once per process, not at every layer's trace
    finally:
        cpu_kernels._status.cache_clear()  # the real kernels again for the tests after this one


def test_bfloat16_keeps_xla():
    assert not cpu_kernels.enabled(np.dtype("bfloat16") if hasattr(np, "bfloat16") else jax.numpy.bfloat16)


@native
def test_concurrent_builds_give_one_library_and_a_rebuild_reuses_it(tmp_path):
    compiler = cpu_kernels.find_compiler()
    out = [None, None]

    def go(i):
        out[i] = cpu_kernels.build(compiler, tmp_path)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out[0] == out[1] and out[0].is_file()
    assert [p.name for p in out[0].parent.iterdir()] == ["libjaxprobe_cpu_kernels.so"]  # no temporary left
    mtime = out[0].stat().st_mtime_ns
    assert cpu_kernels.build(compiler, tmp_path) == out[0] and out[0].stat().st_mtime_ns == mtime


def test_a_broken_compiler_is_reported(tmp_path):
    fake = tmp_path / "c++"
    fake.write_text("#!/bin/sh\necho 'fake: error: cannot compile' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(cpu_kernels.Unavailable,
                       match="(?s)compiling cpu_kernels.cc failed .*fake: error: cannot compile"):
        cpu_kernels.build(str(fake), tmp_path / "cache")
    assert not any((tmp_path / "cache").rglob("*.so*"))


def test_a_bad_choice_stops_run_before_any_work(tmp_path):
    env = {**os.environ, cpu_kernels.ENV: "fast"}
    done = subprocess.run([sys.executable, "-m", "jaxprobe.run", "--config", str(ROOT / "configs" / "ptx_cls.py"),
                           f"--config.cache_dir={tmp_path}", f"--workdir={tmp_path / 'work'}"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == ("error: environment variable JAXPROBE_CPU_KERNELS='fast': "
                                                    "expected one of auto, native, xla")
    assert not any(tmp_path.iterdir())


SHARDED = """
import re, sys
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jaxprobe import encoders
enc = encoders.load("biomedclip", width=32, depth=1, proj_dim=16, input_size=32, seed=3)
mesh = Mesh(np.array(jax.devices()), ("data",))
x = np.random.default_rng(0).standard_normal((8, 32, 32, 3)).astype(np.float32)
xs = jax.device_put(x, NamedSharding(mesh, P("data")))
hlo = enc._forward(xs.sharding).lower(enc.state, xs).compile().as_text()
calls = [line for line in hlo.splitlines() if 'custom_call_target="jaxprobe_dense"' in line]
print(len(jax.devices()), "all-gather" in hlo, len(calls), all(re.search(r"= f32\\[2,", c) for c in calls))
(g, p), (g1, p1) = enc.embed(xs), enc.embed(x)
print(g.sharding.spec, float(np.abs(np.asarray(g) - np.asarray(g1)).max() / np.abs(np.asarray(g1)).max()))
"""


@native
def test_a_batch_sharded_over_devices_is_embedded_shard_by_shard():
    # Left to XLA's partitioner, the custom calls would get the whole batch gathered onto every device.
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.strip().splitlines()[-2:]
    assert first.split()[:2] == ["4", "False"] and int(first.split()[2]) > 0 and first.split()[3] == "True", first
    spec, err = second.rsplit(" ", 1)
    assert spec == "P('data',)" and float(err) < 1e-5, second


@native
def test_a_store_records_which_kernels_computed_it(tmp_path, monkeypatch):
    import embed_worker

    store = embed_worker.run(tmp_path / "native", 4)
    assert store.meta["versions"]["cpu_kernels"].startswith("native (MKL ")
    monkeypatch.setenv(cpu_kernels.ENV, "xla")
    store = embed_worker.run(tmp_path / "xla", 4)
    assert store.meta["versions"]["cpu_kernels"] == "XLA (JAXPROBE_CPU_KERNELS=xla)"


STRESS = """
import jax, jax.numpy as jnp, numpy as np
from jaxprobe.encoders import cpu_kernels as c
assert c.enabled(jnp.float32)
rng = np.random.default_rng(0)
x, w = (jnp.asarray(rng.standard_normal((s, 8)).astype(np.float32)) for s in (2, 8))
qkv = jnp.asarray(rng.standard_normal((1, 8, 3, 2, 4)).astype(np.float32))
b = jnp.zeros(8, jnp.float32)
f = jax.jit(lambda x, w, qkv: [c.dense(x, w * i, b) for i in range(6)]
            + [c.packed_attention(qkv * i, query_block=2) for i in range(6)])
for _ in range(5000):
    jax.block_until_ready(f(x, w, qkv))
print("done")
"""


@native
def test_many_tiny_calls_at_once_neither_crash_nor_hang():
    # Tiny tasks make a helper thread finish while its caller returns; the first version kept the counters on the
    # caller's stack and crashed here (SIGSEGV within 3,000 rounds), and hung once in benchmarks/encoders.py.
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", STRESS], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("done"), (done.returncode, done.stderr[-2000:])


@native
def test_benchmark_profile_attributes_time_to_the_native_kernels():
    # benchmarks/encoders.py --profile backs the README's "where the time goes"; a dense layer large enough to
    # dominate a small fused epilogue must show up as the native kernels' share.
    sys.path.insert(0, str(ROOT))
    from benchmarks.encoders import profile_shares

    loaded, why_not = cpu_kernels._status()
    assert loaded, why_not
    rng = np.random.default_rng(0)
    x = jax.device_put(rng.standard_normal((512, 512)).astype(np.float32))
    w = jax.device_put(rng.standard_normal((512, 1024)).astype(np.float32))
    b = jax.device_put(np.zeros(1024, np.float32))
    f = jax.jit(lambda x: cpu_kernels.dense(x, w, b, "gelu").sum(axis=1))
    jax.block_until_ready(f(x))
    shares = profile_shares(lambda: jax.block_until_ready(f(x)))
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    assert shares["native kernels"] > 0.5, shares
