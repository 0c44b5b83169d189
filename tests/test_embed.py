"""Embedding store: equality with direct embedding, resume after SIGKILL, stale keys, truncation, devices, processes."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import embed_worker as W
from jaxprobe.embed import Store, StoreError, extract, store_path

WORKER = str(Path(__file__).with_name("embed_worker.py"))


def _env(devices: int = 1):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    return env


def _arrays(store: Store):
    return {k: np.asarray(store.array(k)) for k in ("global", "patches", "masks")}


def test_store_equals_direct_embedding_and_readers_work(tmp_path):
    store = W.run(tmp_path, 37)  # 37 = partial last chunk and partial last batch
    enc = W.tiny_encoder()
    load = W.make_load_fn()
    pixels = np.stack([load(i)["pixels"] for i in range(37)])
    g, p = (np.asarray(t) for t in enc.embed(pixels))
    np.testing.assert_allclose(store.global_embeddings, g, rtol=1e-4, atol=2e-5)  # batch shapes differ
    np.testing.assert_allclose(store.patches.astype(np.float32), p, rtol=1e-3, atol=1e-3)
    assert store.patches.dtype == np.float16 and store.global_embeddings.dtype == np.float32
    assert store.ids == W.ids(37)
    np.testing.assert_array_equal(store.masks(np.arange(37)), np.stack([load(i)["mask"] for i in range(37)]))
    np.testing.assert_array_equal(store.targets()["label"], np.arange(37) % 2)
    # plain numpy reads the files without jaxprobe
    np.testing.assert_array_equal(np.load(store.path / "global.npy"), store.global_embeddings)
    idx = np.array([30, 2, 17, 2])
    batch = next(store.batches(idx, batch_size=4))
    np.testing.assert_array_equal(batch["global"], store.global_embeddings[idx])
    np.testing.assert_array_equal(batch["patches"], store.patches[idx])
    on_device = store.to_device(("global",))
    np.testing.assert_array_equal(np.asarray(on_device["global"]), store.global_embeddings)


class _Counting:
    """The tiny encoder, counting the images it embeds."""

    def __init__(self):
        self.inner, self.images = W.tiny_encoder(), 0
        self.spec = self.inner.spec

    def identity(self):
        return self.inner.identity()

    def embed(self, pixels):
        self.images += len(pixels)
        return self.inner.embed(pixels)


def test_one_store_per_image_set_holds_what_the_heads_read(tmp_path):
    """A global-only extraction writes no patch tokens; a later one with patches builds the store that every
    analysis of the image set then shares: global-only requests read it, and a second mask target is added as a
    side array by loading the masks alone (the encoder runs for no image)."""
    n, kw = 20, dict(name="tiny", batch_size=8, chunk_size=16, progress=False, workers=2)
    load = W.make_load_fn()
    small = extract(W.tiny_encoder(), W.ids(n), load, tmp_path, features=("global",), **kw)
    assert small.features == ("global",) and not (small.path / "patches.npy").exists()
    with pytest.raises(StoreError, match="global embeddings only"):
        small.patches
    full = extract(W.tiny_encoder(), W.ids(n), load, tmp_path, mask_size=W.SIZE, mask_settings={"target": "a"},
                   **kw)
    assert full.path != small.path and (full.path / "patches.npy").exists()
    np.testing.assert_array_equal(full.global_embeddings, small.global_embeddings)
    counting = _Counting()
    shared = extract(counting, W.ids(n), load, tmp_path, features=("global",), **kw)
    assert shared.path == full.path and counting.images == 0
    # another mask target (here: the inverted masks) is a side array of the same store, encoder not run
    inverted = lambda i: {**load(i), "mask": ~load(i)["mask"]}  # noqa: E731
    other = extract(counting, W.ids(n), inverted, tmp_path, mask_size=W.SIZE, mask_settings={"target": "b"}, **kw)
    assert other.path == full.path and counting.images == 0
    assert other.mask_part != full.mask_part
    np.testing.assert_array_equal(other.masks(np.arange(n)), ~full.masks(np.arange(n)))
    np.testing.assert_array_equal(Store.open(full.path).bind_masks(full.mask_part).masks(np.arange(n)),
                                  np.stack([load(i)["mask"] for i in range(n)]))
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2  # the global-only one and the shared one


def test_rerun_reuses_and_changes_give_new_stores(tmp_path):
    logs = []
    first = W.run(tmp_path, 20)
    again = extract(W.tiny_encoder(), W.ids(20), W.make_load_fn(), tmp_path, name="tiny", batch_size=8,
                    chunk_size=16, mask_size=W.SIZE, targets={"label": np.arange(20) % 2}, progress=False,
                    log=logs.append)
    assert again.path == first.path and any("reusing" in m for m in logs)
    from jaxprobe import encoders

    other = encoders.load("biomedclip", width=32, depth=1, proj_dim=16, input_size=W.SIZE, seed=4)
    assert store_path(tmp_path, "tiny", other, W.ids(20)) != first.path  # other weights -> other key
    assert store_path(tmp_path, "tiny", W.tiny_encoder(), W.ids(21)) != first.path  # other records
    with pytest.raises(StoreError, match="record ids differ"):
        Store.open(first.path, ids=W.ids(19) + ["x"])
    with pytest.raises(StoreError, match="different encoder"):
        Store.open(first.path, identity=other.identity())


def test_truncated_or_reshaped_store_is_reported(tmp_path):
    store = W.run(tmp_path, 20)
    f = store.path / "patches.npy"
    data = f.read_bytes()
    f.write_bytes(data[:-100])
    with pytest.raises(StoreError, match="truncated"):
        Store.open(store.path)
    f.write_bytes(data)
    np.save(store.path / "global.npy", np.zeros((20, 3), np.float32))
    with pytest.raises(StoreError, match=r"header says \[20, 3\]"):
        Store.open(store.path)


def test_resume_after_sigkill_gives_identical_store(tmp_path):
    n = 160  # 10 chunks of 16
    proc = subprocess.Popen([sys.executable, WORKER, str(tmp_path / "killed"), "--n", str(n), "--delay", "0.02"],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    chunks = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:
        found = list((tmp_path / "killed").glob("*/chunks/*.done"))
        if len(found) >= 3:
            chunks = found
            break
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.05)
    assert chunks, "extraction never got going"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = Store.open(chunks[0].parents[1])
    assert not partial.complete and 0 < len(partial.pending_chunks()) < 10
    with pytest.raises(StoreError, match="incomplete"):
        partial.array("global")
    resumed = W.run(tmp_path / "killed", n)
    fresh = W.run(tmp_path / "fresh", n)
    for k, v in _arrays(fresh).items():
        np.testing.assert_array_equal(_arrays(resumed)[k], v, err_msg=k)


def _extract_recording(root, n, loaded, **kw):
    """W.run's extraction with a load function that records the rows it is asked for."""
    load = W.make_load_fn()

    def recording(i):
        loaded.append(i)
        return load(i)
    return extract(W.tiny_encoder(), W.ids(n), recording, root, name="tiny", batch_size=8, chunk_size=16,
                   workers=2, mask_size=W.SIZE, targets={"label": np.arange(n) % 2}, progress=False, **kw)


def test_resume_fills_the_gaps_a_multi_process_extraction_left(tmp_path, monkeypatch):
    """Process 0 of a two-process extraction writes chunks 0 and 2 of 4 and its partner never writes: the done
    chunks are not a prefix. A one-process resume embeds exactly chunks 1 and 3 and gives a store byte-equal to one
    written in one go."""
    import jax

    n = 64  # 4 chunks of 16
    with monkeypatch.context() as m:
        m.setattr(jax, "process_count", lambda: 2)
        m.setattr(jax, "process_index", lambda: 0)
        first = []
        with pytest.raises(StoreError, match="2 chunks still missing"):
            _extract_recording(tmp_path / "gaps", n, first, wait_timeout=0)
    assert sorted(first) == [*range(0, 16), *range(32, 48)]
    partial = Store.open(_store_dir(tmp_path / "gaps"))
    assert partial.pending_chunks() == [1, 3] and not partial.complete
    resumed = []
    store = _extract_recording(tmp_path / "gaps", n, resumed)
    assert sorted(resumed) == [*range(16, 32), *range(48, 64)]
    fresh = W.run(tmp_path / "fresh", n)
    assert store.path.name == fresh.path.name and store.complete
    assert store.mask_part == fresh.mask_part and store.mask_part.startswith("masks-")
    for name in ("global", "patches", store.mask_part):
        assert (store.path / f"{name}.npy").read_bytes() == (fresh.path / f"{name}.npy").read_bytes(), name


def _store_dir(root):
    """The one store folder under ``root`` (beside it lies the extraction's lock file)."""
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    return folder


def test_four_devices_match_one(tmp_path):
    out = subprocess.run([sys.executable, WORKER, str(tmp_path / "four"), "--n", "40"], env=_env(4),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 device(s)" in out.stdout
    four = Store.open(_store_dir(tmp_path / "four"))
    one = W.run(tmp_path / "one", 40)
    np.testing.assert_allclose(four.global_embeddings, one.global_embeddings, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(four.patches.astype(np.float32), one.patches.astype(np.float32), atol=2e-3)
    np.testing.assert_array_equal(four.array("masks"), one.array("masks"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path):
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, WORKER, str(tmp_path / "two"), "--n", "70",
                               "--distributed", str(pid), "2", str(port)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for pid in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert "process 1/2" in outs[1]
    two = Store.open(_store_dir(tmp_path / "two"))
    one = W.run(tmp_path / "one", 70)
    assert two.path.name == one.path.name
    for k, v in _arrays(one).items():
        np.testing.assert_array_equal(_arrays(two)[k], v, err_msg=k)


def test_mask_rows_unpacks_only_the_rows_asked_for(tmp_path):
    store = W.run(tmp_path, 20)
    rows = store.mask_rows()
    assert rows.shape == (20, W.SIZE, W.SIZE) and len(rows) == 20
    load = W.make_load_fn()
    np.testing.assert_array_equal(rows[np.array([3, 11])], np.stack([load(3)["mask"], load(11)["mask"]]))


def test_a_full_disk_is_a_clear_error_and_the_store_resumes(tmp_path, monkeypatch):
    """Disk full used to end in SIGBUS (exit 135) from a write through a memory map. ENOSPC is injected at the
    third write call; the error names the file and the space; after space is freed the run resumes to the
    same store as an uninterrupted one."""
    import errno

    whole = _arrays(W.run(tmp_path / "whole", 40))
    real, calls = os.pwrite, []

    def full_disk(fd, data, offset):
        calls.append(offset)
        if len(calls) >= 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(StoreError, match=r"\.npy: the disk is full .*MiB of the store are still to be written.*run again"):
        W.run(tmp_path / "full", 40)
    monkeypatch.setattr(os, "pwrite", real)
    resumed = W.run(tmp_path / "full", 40)
    for a, b in zip(_arrays(resumed), whole):
        np.testing.assert_array_equal(a, b)


def test_too_little_free_space_is_refused_before_extraction(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(StoreError, match=r"the store needs .* MiB and 0 MiB are free"):
        W.run(tmp_path, 40)
