"""Heads against their PyTorch twins (copied weights): forward passes, gradients, BatchNorm modes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flax import nnx

from benchmarks.torch_heads import (TorchCrossAttentionSegmenter, TorchLinearProbe, TorchLinearSegProbe,
                                    copy_torch_weights)
from jaxprobe.encoders.spec import EncoderSpec
from jaxprobe.heads import (Conv3x3, CrossAttentionSegmenter, LinearProbe, LinearSegProbe, MapLayerNorm,
                            SingleQueryAttention, bilinear_matrix, make_head, resize_bilinear)

torch.set_num_threads(1)
SMALL = dict(widths=(12, 8), num_heads=2, attention_dim=8)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Default init hides mapping bugs (LayerNorm 1/0, zero biases, unit running stats): redraw everything."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in list(module.parameters()) + list(module.buffers()):
            if p.dtype.is_floating_point:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for name, buf in module.named_buffers():
            if "running_var" in name:
                buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)


@pytest.mark.parametrize("in_size,out_size", [(37, 518), (14, 224), (5, 64), (64, 64), (9, 4)])
def test_bilinear_matches_torch_interpolate(in_size, out_size):
    x = np.random.default_rng(0).normal(size=(2, in_size, in_size, 3)).astype(np.float32)
    ours = np.asarray(resize_bilinear(jnp.asarray(x), out_size))
    ref = F.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=(out_size, out_size), mode="bilinear",
                        align_corners=False).permute(0, 2, 3, 1).numpy()
    # torch computes source coordinates in float32, we in float64: differences of a few ulps of the inputs
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=5e-5)
    np.testing.assert_allclose(bilinear_matrix(in_size, out_size).sum(1), 1.0, rtol=1e-6)


# (4, 16): few positions per channel, the shifted-product path; (8, 4): XLA's convolution; (5, 6) -> 9: resize
@pytest.mark.parametrize("size,channels,resize_to", [(4, 16, None), (8, 4, None), (5, 6, 9), (9, 6, 5)])
def test_conv3x3_matches_torch(size, channels, resize_to):
    x = np.random.default_rng(1).normal(size=(2, size, size, channels)).astype(np.float32)
    conv = Conv3x3(channels, 3, rngs=nnx.Rngs(0))
    twin = torch.nn.Conv2d(channels, 3, 3, padding=1)
    _randomise(twin, 7)
    conv.kernel[...] = twin.weight.detach().numpy().transpose(2, 3, 1, 0)
    conv.bias[...] = twin.bias.detach().numpy()
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    if resize_to is not None:
        xt = F.interpolate(xt, size=(resize_to, resize_to), mode="bilinear", align_corners=False)
    ref = twin(xt).permute(0, 2, 3, 1).detach().numpy()
    np.testing.assert_allclose(np.asarray(conv(jnp.asarray(x), resize_to=resize_to)), ref, rtol=1e-4, atol=1e-4)


def _inputs(b, grid, c, d, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(b, grid, grid, c)).astype(np.float32), rng.normal(size=(b, d)).astype(np.float32))


def test_linear_seg_probe_matches_torch():
    twin = TorchLinearSegProbe(16, 5, 38)
    _randomise(twin, 1)
    head = LinearSegProbe(16, 5, 38, rngs=nnx.Rngs(0))
    copy_torch_weights(twin, head)
    patches, _ = _inputs(3, 5, 16, 4)
    np.testing.assert_allclose(np.asarray(head(jnp.asarray(patches))), twin(torch.from_numpy(patches)).detach(),
                               rtol=1e-5, atol=1e-5)


def test_linear_probe_matches_torch():
    twin = TorchLinearProbe(24)
    _randomise(twin, 2)
    head = LinearProbe(24, rngs=nnx.Rngs(0))
    copy_torch_weights(twin, head)
    _, g = _inputs(5, 2, 2, 24)
    np.testing.assert_allclose(np.asarray(head(jnp.asarray(g))), twin(torch.from_numpy(g)).detach(), rtol=1e-5,
                               atol=1e-6)


def _segmenter_pair(grid, refine_size, seed=3, input_size=30, c=16, d=10, **options):
    twin = TorchCrossAttentionSegmenter(c, d, grid, input_size, refine_size=refine_size, **SMALL)
    _randomise(twin, seed)
    head = CrossAttentionSegmenter(c, d, grid, input_size, refine_size=refine_size, rngs=nnx.Rngs(0), **SMALL,
                                   **options)
    copy_torch_weights(twin, head)
    return twin, head


# grid < refine_size runs the folded resize+conv path, grid > refine_size the plain one
@pytest.mark.parametrize("grid,refine_size", [(5, 12), (9, 6)])
def test_segmenter_eval_mode_matches_torch(grid, refine_size):
    twin, head = _segmenter_pair(grid, refine_size)
    twin.eval()
    head.eval()
    patches, g = _inputs(3, grid, 16, 10)
    ours = np.asarray(head(jnp.asarray(patches), jnp.asarray(g)))
    ref = twin(torch.from_numpy(patches), torch.from_numpy(g)).detach().numpy()
    assert ours.shape == (3, 30, 30)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


def test_norm_epsilon_and_bn_momentum_act_on_every_norm_with_exact_variances():
    """``norm_epsilon`` is the epsilon of the map LayerNorm, both BatchNorms and the query LayerNorm, ``bn_momentum``
    the BatchNorms' (torch's eps and momentum); a large epsilon makes each one visible. Inputs and conv outputs
    300 away from zero with unit spread: a one-pass variance (E[x^2] - E[x]^2 in float32) is off there, torch's
    is not, so every norm must compute its variance as torch does."""
    twin, head = _segmenter_pair(5, 12, norm_epsilon=0.5, bn_momentum=0.3)
    for module in twin.modules():
        if isinstance(module, (torch.nn.LayerNorm, torch.nn.BatchNorm2d)):
            module.eps = 0.5
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.3
    with torch.no_grad():
        for conv in (twin.refine[0], twin.refine[3]):
            conv.bias += 300.0
    copy_torch_weights(twin, head)
    patches, g = _inputs(4, 5, 16, 10)
    patches, g = patches + 300.0, g + 300.0
    twin.train()
    head.train()
    ref = twin(torch.from_numpy(patches), torch.from_numpy(g)).detach().numpy()
    np.testing.assert_allclose(np.asarray(head(jnp.asarray(patches), jnp.asarray(g))), ref, rtol=1e-4, atol=1e-4)
    for bn, tbn in ((head.bn1, twin.refine[1]), (head.bn2, twin.refine[4])):
        np.testing.assert_allclose(np.asarray(bn.mean[...]), tbn.running_mean.numpy(), rtol=1e-4)
        with torch.no_grad():  # torch keeps the unbiased batch variance, Flax the biased one (checked below)
            tbn.running_var.copy_(torch.from_numpy(np.asarray(bn.var[...])))
    twin.eval()
    head.eval()
    ref = twin(torch.from_numpy(patches), torch.from_numpy(g)).detach().numpy()
    np.testing.assert_allclose(np.asarray(head(jnp.asarray(patches), jnp.asarray(g))), ref, rtol=1e-4, atol=1e-4)


def test_segmenter_training_mode_uses_batch_statistics_and_updates_running_averages():
    twin, head = _segmenter_pair(5, 12)
    twin.train()
    head.train()
    patches, g = _inputs(4, 5, 16, 10)
    initial_var = [twin.refine[i].running_var.numpy().copy() for i in (1, 4)]
    ref = twin(torch.from_numpy(patches), torch.from_numpy(g)).detach().numpy()
    ours = np.asarray(head(jnp.asarray(patches), jnp.asarray(g)))
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
    n = 4 * 12 * 12  # elements per channel; torch stores the unbiased batch variance, Flax the biased one
    for bn, tbn, var0 in ((head.bn1, twin.refine[1], initial_var[0]), (head.bn2, twin.refine[4], initial_var[1])):
        np.testing.assert_allclose(np.asarray(bn.mean[...]), tbn.running_mean.numpy(), rtol=1e-4, atol=1e-5)
        torch_batch_var = (tbn.running_var.numpy() - 0.9 * var0) / 0.1
        ours_batch_var = (np.asarray(bn.var[...]) - 0.9 * var0) / 0.1
        np.testing.assert_allclose(ours_batch_var * n / (n - 1), torch_batch_var, rtol=1e-3, atol=1e-5)
    # eval mode must now use those running averages, not the batch: a single sample gives the batch result
    head.eval()
    twin.eval()
    np.testing.assert_allclose(np.asarray(head(jnp.asarray(patches[:1]), jnp.asarray(g[:1]))),
                               twin(torch.from_numpy(patches[:1]), torch.from_numpy(g[:1])).detach().numpy(),
                               rtol=1e-3, atol=1e-3)


def test_segmenter_gradients_match_torch():
    twin, head = _segmenter_pair(5, 12)
    twin.train()
    head.train()
    patches, g = _inputs(3, 5, 16, 10, seed=4)
    masks = (np.random.default_rng(5).random((3, 30, 30)) > 0.5).astype(np.float32)
    loss = F.binary_cross_entropy_with_logits(twin(torch.from_numpy(patches), torch.from_numpy(g)),
                                              torch.from_numpy(masks))
    loss.backward()

    graphdef, params, stats = nnx.split(head, nnx.Param, nnx.BatchStat)

    def loss_fn(params):
        logits = nnx.merge(graphdef, params, stats, copy=True)(jnp.asarray(patches), jnp.asarray(g))
        return jnp.mean(jnp.maximum(logits, 0) - logits * masks + jnp.log1p(jnp.exp(-jnp.abs(logits))))

    ours_loss, grads = jax.value_and_grad(loss_fn)(params)
    np.testing.assert_allclose(float(ours_loss), loss.item(), rtol=1e-5)
    grad_head = nnx.merge(graphdef, grads, stats)
    # a zero gradient would not prove the mapping; compare each against torch
    np.testing.assert_allclose(np.asarray(grad_head.conv1.kernel[...]),
                               twin.refine[0].weight.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grad_head.map_norm.scale[...]),
                               twin.map_norm.weight.grad.numpy().transpose(1, 2, 0), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grad_head.query.kernel[...]), twin.query.weight.grad.numpy().T,
                               rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grad_head.attention.k.kernel[...]),
                               twin.attention.in_proj_weight.grad[8:16].numpy().T, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(grad_head.classifier.kernel[...])[:, 0],
                               twin.classifier.weight.grad.numpy()[0, :, 0, 0], rtol=1e-3, atol=1e-5)


def test_sample_mask_makes_padding_invisible_to_batch_statistics():
    twin, head = _segmenter_pair(5, 12)
    twin.train()
    head.train()
    patches, g = _inputs(3, 5, 16, 10, seed=6)
    ref = twin(torch.from_numpy(patches[:2]), torch.from_numpy(g[:2])).detach().numpy()
    padded = head(jnp.asarray(patches), jnp.asarray(g), sample_mask=jnp.array([True, True, False]))
    np.testing.assert_allclose(np.asarray(padded)[:2], ref, rtol=1e-4, atol=1e-4)


def test_make_head_takes_sizes_from_the_encoder_spec():
    spec = EncoderSpec(family="dinov2", input_size=518, patch_size=14, mean=(0.5,) * 3, std=(0.5,) * 3,
                       resize="direct", global_dim=768, patch_dim=768)
    full = nnx.eval_shape(lambda: make_head("custom_seg", spec, rngs=nnx.Rngs(0)))
    assert full.conv1.kernel.shape == (3, 3, 768, 512)
    assert full.conv2.kernel.shape == (3, 3, 512, 256)
    assert full.key_value.kernel.shape == (256, 512)
    assert full.map_norm.scale.shape == (37, 37, 768)
    assert (full.refine_size, full.attention.num_heads, full.input_size) == (64, 8, 518)
    assert make_head("linear", spec, rngs=nnx.Rngs(0)).dense.kernel.shape == (768, 1)
    assert make_head("linear_seg", spec, rngs=nnx.Rngs(0)).conv.kernel.shape == (768, 1)
    with pytest.raises(ValueError, match="unknown head 'mlp'"):
        make_head("mlp", spec, rngs=nnx.Rngs(0))
    # the options reach the head, and the grid and input size are the spec's
    small = EncoderSpec(family="dinov2", input_size=70, patch_size=14, mean=(0.5,) * 3, std=(0.5,) * 3,
                        resize="direct", global_dim=10, patch_dim=16)
    seg = make_head("linear_seg", small, rngs=nnx.Rngs(0), classes=2, align_corners=True)
    assert (seg.grid, seg.input_size, seg.classes, seg.align_corners) == (5, 70, 2, True)
    assert seg.conv.kernel.shape == (16, 2)
    assert seg(jnp.ones((2, 5, 5, 16), jnp.float16)).shape == (2, 70, 70)
    custom = make_head("custom_seg", small, rngs=nnx.Rngs(0), widths=(8, 4), refine_size=10, num_heads=2,
                       attention_dim=4)
    assert (custom.conv1.kernel.shape, custom.conv2.kernel.shape) == ((3, 3, 16, 8), (3, 3, 8, 4))
    assert (custom.refine_size, custom.attention.num_heads, custom.input_size) == (10, 2, 70)


def test_wrong_shapes_are_named():
    head = LinearSegProbe(16, 5, 38, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"patches must have shape \[B,5,5,16\], got \(2, 5, 5, 8\)"):
        head(jnp.zeros((2, 5, 5, 8)))
    with pytest.raises(ValueError, match=r"^LinearSegProbe: patches must have shape \[B,5,5,16\], got \(5, 5, 16\)$"):
        head(jnp.zeros((5, 5, 16)))
    probe = LinearProbe(16, rngs=nnx.Rngs(0))
    assert probe(jnp.zeros((3, 16), jnp.float16)).shape == (3,)
    with pytest.raises(ValueError, match=r"^LinearProbe: global embedding must have shape \[B,16\], got \(3, 8\)$"):
        probe(jnp.zeros((3, 8)))
    spec = EncoderSpec(family="dinov2", input_size=70, patch_size=14, mean=(0.5,) * 3, std=(0.5,) * 3,
                       resize="direct", global_dim=16, patch_dim=16)
    with pytest.raises(ValueError, match=r"^make_head: head 'linear' takes no options, got \['classes'\]$"):
        make_head("linear", spec, rngs=nnx.Rngs(0), classes=2)
    with pytest.raises(ValueError, match="attention_dim=16 must equal"):
        CrossAttentionSegmenter(16, 10, 5, 30, widths=(12, 8), attention_dim=16, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"^SingleQueryAttention: dim=12 must be divisible by num_heads=5$"):
        SingleQueryAttention(12, 5, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("align_corners", [False, True])
def test_bilinear_resize_matches_torch_both_ways(align_corners):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).normal(size=(2, 7, 7)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x)[:, None], size=(30, 30), mode="bilinear",
                                               align_corners=align_corners)[:, 0].numpy()
    np.testing.assert_allclose(np.asarray(resize_bilinear(jnp.asarray(x), 30, align_corners)), expected, atol=1e-5)


def test_two_class_linear_seg_probe_is_the_authors_probe():
    """classes=2, align_corners=True gives the margin of the authors' LinearProbe (Conv2d to 2 classes, bilinear
    upsampling with align_corners=True): its sigmoid is their softmax's foreground probability."""
    torch = pytest.importorskip("torch")
    head = LinearSegProbe(16, 5, 40, classes=2, align_corners=True, rngs=nnx.Rngs(0))
    conv = torch.nn.Conv2d(16, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.asarray(head.conv.kernel[...]).T[:, :, None, None]))
        conv.bias.copy_(torch.from_numpy(np.asarray(head.conv.bias[...])))
    x = np.random.default_rng(1).normal(size=(3, 5, 5, 16)).astype(np.float32)
    with torch.no_grad():
        logits = torch.nn.functional.interpolate(conv(torch.from_numpy(x).permute(0, 3, 1, 2)), size=(40, 40),
                                                 mode="bilinear", align_corners=True)
    ours = np.asarray(head(jnp.asarray(x)))
    np.testing.assert_allclose(ours, (logits[:, 1] - logits[:, 0]).numpy(), atol=1e-5)
    np.testing.assert_allclose(1 / (1 + np.exp(-ours)), torch.softmax(logits, 1)[:, 1].numpy(), atol=1e-6)
    assert np.array_equal(ours > 0, logits.argmax(1).numpy() == 1)
    with pytest.raises(ValueError, match="classes must be 1"):
        LinearSegProbe(16, 5, 40, classes=3, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("in_size, out_size", [(6, 1), (1, 4)])
def test_bilinear_resize_to_and_from_a_single_pixel_matches_torch(align_corners, in_size, out_size):
    x = np.random.default_rng(5).normal(size=(2, in_size, in_size)).astype(np.float32)
    expected = F.interpolate(torch.from_numpy(x)[:, None], size=(out_size, out_size), mode="bilinear",
                             align_corners=align_corners)[:, 0].numpy()
    np.testing.assert_allclose(np.asarray(resize_bilinear(jnp.asarray(x), out_size, align_corners)), expected,
                               atol=1e-6)
    with pytest.raises(ValueError, match=r"^bilinear_matrix: sizes must be positive, got in_size=0, out_size=3$"):
        bilinear_matrix(0, 3)
    with pytest.raises(ValueError, match=r"got in_size=3, out_size=0$"):
        bilinear_matrix(3, 0)


def test_non_square_maps_are_refused_by_name():
    with pytest.raises(ValueError, match=r"^resize_bilinear: expected a square map \[B,H,H,C\] or \[B,H,H\], got "
                                         r"shape \(2, 4, 5, 3\)$"):
        resize_bilinear(jnp.zeros((2, 4, 5, 3)), 8)
    with pytest.raises(ValueError, match=r"got shape \(4, 4\)$"):
        resize_bilinear(jnp.zeros((4, 4)), 8)
    with pytest.raises(ValueError, match=r"^Conv3x3: expected a square map \[B,H,H,C\], got shape \(1, 4, 5, 2\)$"):
        Conv3x3(2, 3, rngs=nnx.Rngs(0))(jnp.zeros((1, 4, 5, 2)))


def test_dense_and_conv_layers_start_as_torch_does():
    """PyTorch's nn.Linear and nn.Conv2d draw weights and biases uniformly in +-1/sqrt(fan_in); so do the heads'
    dense layers (the segmenter's query projection from a 10-wide global embedding) and 3x3 convolutions. The
    attention's q/k/v projections start as nn.MultiheadAttention's: xavier-uniform over the fused in-projection,
    out-projection as nn.Linear, all biases zero."""
    torch.manual_seed(0)
    head = CrossAttentionSegmenter(16, 10, 5, 30, rngs=nnx.Rngs(0))
    twin = TorchCrossAttentionSegmenter(16, 10, 5, 30)
    assert head.query.kernel.shape == (10, twin.query.out_features) and twin.query.out_features >= 64
    conv, torch_conv = Conv3x3(12, 256, rngs=nnx.Rngs(1)), torch.nn.Conv2d(12, 256, 3)   # fan_in 3 x 3 x 12
    attention, torch_attention = SingleQueryAttention(64, 4, rngs=nnx.Rngs(2)), torch.nn.MultiheadAttention(64, 4)
    uniform = []  # (bound, values drawn uniformly in +-bound)
    for fan_in, ours, theirs in ((10, head.query, twin.query), (9 * 12, conv, torch_conv)):
        bound = 1 / np.sqrt(fan_in)
        uniform += [(bound, v) for v in (ours.bias[...], ours.kernel[...], theirs.bias.detach(),
                                         theirs.weight.detach())]
    xavier = np.sqrt(6 / (64 + 3 * 64))  # torch's xavier-uniform over the fused [3*64, 64] in_proj_weight
    uniform += [(xavier, p.kernel[...]) for p in (attention.q, attention.k, attention.v)]
    uniform += [(xavier, torch_attention.in_proj_weight.detach()), (1 / np.sqrt(64), attention.out.kernel[...]),
                (1 / np.sqrt(64), torch_attention.out_proj.weight.detach())]
    for bound, values in uniform:
        values = np.abs(np.asarray(values))
        # the largest of n uniform draws falls under (1 - 10/n) x bound with probability e^-10
        assert (1 - 10 / values.size) * bound < values.max() <= bound, (bound, values.shape)
    for values in (attention.q.bias, attention.k.bias, attention.v.bias, attention.out.bias):
        assert not np.any(np.asarray(values[...]))
    assert not torch_attention.in_proj_bias.any() and not torch_attention.out_proj.bias.any()


def test_copying_a_twin_into_a_head_of_another_shape_is_refused():
    """A one-output torch twin copied into a two-class probe would broadcast its [16, 1] kernel into [16, 2]."""
    twin = TorchLinearSegProbe(16, 5, 38)
    head = LinearSegProbe(16, 5, 38, classes=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"^copy_torch_weights: shape \(16, 1\) does not fit parameter \(16, 2\)$"):
        copy_torch_weights(twin, head)


def test_segmenter_refusals_are_named_whole():
    head = CrossAttentionSegmenter(16, 10, 5, 30, rngs=nnx.Rngs(0), **SMALL)
    patches, g = _inputs(2, 5, 16, 10)
    with pytest.raises(ValueError, match=r"^CrossAttentionSegmenter: patches must have shape \[B,5,5,16\], got "
                                         r"\(2, 5, 5, 8\)$"):
        head(jnp.zeros((2, 5, 5, 8)), jnp.asarray(g))
    with pytest.raises(ValueError, match=r"^CrossAttentionSegmenter: global embedding must have shape \[2,10\], got "
                                         r"\(3, 10\)$"):
        head(jnp.asarray(patches), jnp.zeros((3, 10)))
    with pytest.raises(ValueError, match=r"^CrossAttentionSegmenter: widths must hold two conv widths, got "
                                         r"\(12, 8, 4\)$"):
        CrossAttentionSegmenter(16, 10, 5, 30, widths=(12, 8, 4), attention_dim=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"^CrossAttentionSegmenter: attention_dim=16 must equal the refined map's "
                                         r"width widths\[-1\]=8 because .*$"):
        CrossAttentionSegmenter(16, 10, 5, 30, widths=(12, 8), attention_dim=16, rngs=nnx.Rngs(0))


def test_map_layer_norm_of_a_constant_map_is_its_bias_as_in_torch():
    """Zero variance: epsilon alone keeps the normalisation finite (torch.nn.LayerNorm over [C, G, G] as oracle)."""
    x = np.full((2, 3, 3, 4), 0.7, np.float32)
    x[1] = 0.7 + np.random.default_rng(0).normal(0, 1e-4, (3, 3, 4))
    ref = torch.nn.LayerNorm([4, 3, 3])
    _randomise(ref, 4)
    norm = MapLayerNorm(3, 4)
    norm.scale[...] = ref.weight.detach().numpy().transpose(1, 2, 0)
    norm.bias[...] = ref.bias.detach().numpy().transpose(1, 2, 0)
    expected = ref(torch.from_numpy(x).permute(0, 3, 1, 2)).detach().permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.asarray(norm(jnp.asarray(x))), expected, rtol=1e-4, atol=1e-4)
