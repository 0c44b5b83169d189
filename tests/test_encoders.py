"""``jaxprobe.encoders.load``: named random encoders, overrides, dtype, and the converted-folder round trip."""
import numpy as np
import pytest

from jaxprobe.errors import CheckpointError

from jaxprobe import encoders


@pytest.mark.parametrize("name,size,grid,gdim,pdim", [("rad_dino", 518, 37, 768, 768), ("chexagent", 512, 32, 1024, 1024),
                                                     ("biomedclip", 224, 14, 512, 768)])
def test_named_encoders_have_the_studys_shapes(name, size, grid, gdim, pdim):
    enc = encoders.load(name, depth=1)  # full width, one block: the shapes are what matter here
    s = enc.spec
    assert (s.input_size, s.grid, s.global_dim, s.patch_dim) == (size, grid, gdim, pdim)
    g, p = enc.embed(np.zeros((2, size, size, 3), np.float32))
    assert g.shape == (2, gdim) and p.shape == (2, grid, grid, pdim)
    assert np.isfinite(np.asarray(g)).all()


def test_full_size_parameter_counts():
    # RAD-DINO = DINOv2-B/14 (86.6M), XraySigLIP vision = SigLIP-L/16 at 512 with MAP head, BiomedCLIP ViT-B/16 + proj
    counts = {n: encoders.load(n).num_params for n in ("rad_dino", "biomedclip")}
    assert counts["rad_dino"] == 86_580_480
    assert counts["biomedclip"] == 86_191_872  # 768*512 projection, no bias, no classifier


def test_reduced_size_overrides_and_seed():
    a = encoders.load("rad_dino", width=64, depth=2, seed=1)
    b = encoders.load("rad_dino", width=64, depth=2, seed=1)
    c = encoders.load("rad_dino", width=64, depth=2, seed=2)
    assert a.config.num_heads == 1 and a.config.mlp_dim == 256 and a.spec.patch_dim == 64
    x = np.random.default_rng(0).standard_normal((1, 518, 518, 3)).astype(np.float32)
    ga, _ = a.embed(x)
    gb, _ = b.embed(x)
    gc, _ = c.embed(x)
    np.testing.assert_array_equal(np.asarray(ga), np.asarray(gb))
    assert not np.allclose(np.asarray(ga), np.asarray(gc))


def test_input_size_override_resamples_positions():
    enc = encoders.load("biomedclip", width=64, depth=1, input_size=288)
    assert enc.spec.grid == 18
    g, p = enc.embed(np.zeros((1, 288, 288, 3), np.float32))
    assert p.shape == (1, 18, 18, 64)


def test_bfloat16_compute_is_close_to_float32():
    x = np.random.default_rng(0).standard_normal((2, 224, 224, 3)).astype(np.float32)
    f32 = encoders.load("biomedclip", width=128, depth=2)
    bf16 = encoders.load("biomedclip", width=128, depth=2, dtype="bfloat16")
    g32, p32 = (np.asarray(t) for t in f32.embed(x))
    g16, p16 = (np.asarray(t) for t in bf16.embed(x))
    assert g16.dtype == np.float32  # outputs are always returned as float32
    assert np.linalg.norm(p16 - p32) / np.linalg.norm(p32) < 3e-2
    assert not np.array_equal(p16, p32)


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="unknown overrides \\['widht'\\]"):
        encoders.load("rad_dino", widht=64)
    with pytest.raises(ValueError, match="neither an encoder name"):
        encoders.load("rad-dino")
    with pytest.raises(ValueError, match="not a multiple of the patch size 14"):
        encoders.load("rad_dino", depth=1, input_size=500)
    enc = encoders.load("rad_dino", width=64, depth=1)
    with pytest.raises(ValueError, match=r"expected pixels \[B, 518, 518, 3\], got \[1, 224, 224, 3\]"):
        enc.embed(np.zeros((1, 224, 224, 3), np.float32))


def test_folder_without_encoder_json_points_to_the_converter(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="python -m convert"):
        encoders.load(str(tmp_path))


def test_weights_given_as_host_arrays_go_to_the_device_once():
    # A converter hands the module numpy weights, often transposed views; before the fix every embed call re-sent
    # them all to the device (and transposed each view), a cost on every forward. The transfer guard
    # fails any host-to-device copy made during the calls.
    import jax
    from flax import nnx

    from jaxprobe.encoders import Encoder, build_module

    ref = encoders.load("biomedclip", width=64, depth=2, seed=3)
    module = build_module(ref.config)
    state = nnx.state(module)
    params = jax.tree.map(lambda a: np.asfortranarray(np.asarray(a)), nnx.to_pure_dict(nnx.state(ref.module)))
    nnx.replace_by_pure_dict(state, params)
    nnx.update(module, state)
    assert any(isinstance(leaf, np.ndarray) for leaf in jax.tree.leaves(nnx.state(module)))
    enc = Encoder(module, ref.config, ref.spec)
    pixels = jax.device_put(np.random.default_rng(0).standard_normal((2, 224, 224, 3)).astype(np.float32))
    want = [np.asarray(t) for t in ref.embed(pixels)]
    with jax.transfer_guard_host_to_device("disallow"):
        for _ in range(2):
            got = jax.block_until_ready(enc.embed(pixels))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), w)


def test_the_abstract_structure_is_traced_once_per_architecture_and_each_call_gets_its_own(monkeypatch):
    # Loading a converted folder restores into build_module's abstract structure; tracing a full-size ViT's
    # initialisers takes seconds, and a conversion's parity check used to trace the same one three times.
    import jax
    from flax import nnx

    from jaxprobe.encoders import abstract_module
    from jaxprobe.encoders import encoder as encoder_module

    weights = encoders.load("rad_dino", width=40, depth=1, num_heads=2, mlp_dim=80)
    cfg = weights.config
    traced = []
    real = encoder_module.build_module
    monkeypatch.setattr(encoder_module, "build_module", lambda *a, **k: traced.append(a) or real(*a, **k))
    encoder_module._abstract_split.cache_clear()

    def abstract(module):
        return [isinstance(leaf, jax.ShapeDtypeStruct) for leaf in jax.tree.leaves(nnx.state(module))]

    first, second = abstract_module(cfg), abstract_module(cfg)
    assert len(traced) == 1 and first is not second and all(abstract(second))
    nnx.update(first, nnx.state(weights.module))  # restoring weights into one leaves the others abstract
    assert not any(abstract(first)) and all(abstract(second)) and all(abstract(abstract_module(cfg)))
    abstract_module(cfg, dtype="bfloat16")
    assert len(traced) == 2  # a new dtype is a new structure
