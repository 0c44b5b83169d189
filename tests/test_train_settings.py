"""Every training and prediction setting acts on the numbers it claims to: the mask threshold, the epoch cap
(and its report), class weights, gradient clipping, drop_last, and each config.train key reaching TrainConfig."""
import dataclasses
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxprobe.heads import LinearProbe, LinearSegProbe
from jaxprobe.train import TrainConfig, fit, make_optimizer, per_sample_loss, predict
from test_train import SPLIT, C, D, G, S, scalar_data, segmentation_data


def test_the_mask_threshold_decides_the_predicted_pixels():
    data = segmentation_data()
    result = fit(lambda rngs: LinearSegProbe(C, G, S, rngs=rngs), data, *SPLIT[:2], TrainConfig(max_epochs=3,
                 learning_rate=1e-2), loss="bce", progress=False)
    head = result.head(0)
    logits = np.asarray(head(jnp.asarray(data.features["patches"][SPLIT[2]])), np.float64)
    probability = 1 / (1 + np.exp(-logits))
    for t in (0.3, 0.5, 0.8):
        test = predict(result, data, SPLIT[2], mask_threshold=t, progress=False)
        np.testing.assert_array_equal(test.pred_area[0], (probability >= t).sum(axis=(1, 2)))
    with pytest.raises(ValueError, match="mask_threshold"):
        predict(result, data, SPLIT[2], mask_threshold=1.0, progress=False)


def test_a_member_stopped_by_the_epoch_cap_is_reported(caplog):
    data = scalar_data("bce")
    with caplog.at_level(logging.WARNING, logger="jaxprobe.train"):
        result = fit(lambda rngs: LinearProbe(D, rngs=rngs), data, np.arange(200), np.arange(200, 240),
                     TrainConfig(max_epochs=3, patience=10, seeds=(0, 1)), loss="bce", name="capped", progress=False)
    assert [m["stopped_by"] for m in result.members] == ["epoch_cap", "epoch_cap"]
    assert "capped: member(s) [0, 1] stopped at the epoch cap (max_epochs=3)" in caplog.text
    result = fit(lambda rngs: LinearProbe(D, rngs=rngs), data, np.arange(200), np.arange(200, 240),
                 TrainConfig(max_epochs=200, patience=1, learning_rate=0.5), loss="bce", progress=False)
    assert result.members[0]["stopped_by"] == "early_stopping" and result.members[0]["epochs_trained"] < 200
    assert TrainConfig().max_epochs == 500  # the authors' cap, high enough to rarely act


def test_class_weights_weigh_the_two_classes_as_torch_cross_entropy_does():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    two = rng.normal(size=(3, 2, 7, 7)).astype(np.float32)  # a 2-class head's logits
    mask = (rng.random((3, 7, 7)) > 0.7).astype(np.float32)
    target = torch.from_numpy(np.stack([1 - mask, mask], axis=1))
    expected = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 5.0]))(torch.from_numpy(two), target)
    margin = jnp.asarray(two[:, 1] - two[:, 0])
    ours = per_sample_loss("bce", margin, jnp.asarray(mask), (1.0, 5.0)).mean()
    assert float(ours) == pytest.approx(float(expected), rel=1e-6)
    plain = per_sample_loss("bce", margin, jnp.asarray(mask))
    np.testing.assert_allclose(per_sample_loss("bce", margin, jnp.asarray(mask), (1.0, 1.000001)), plain, rtol=1e-5)


def test_gradient_clipping_bounds_the_global_norm():
    params = {"w": jnp.ones(4)}
    grads = {"w": jnp.full(4, 10.0)}
    clipped = make_optimizer(TrainConfig(clip_grad_norm=1.0, learning_rate=1.0, weight_decay=0.0))
    free = make_optimizer(TrainConfig(learning_rate=1.0, weight_decay=0.0))
    # Adam's first step is scale-free, so compare the second moment it records: clipped grads have norm 1
    state = clipped.init(params)
    _, state = clipped.update(grads, state, params)
    nu = jax.tree.leaves(state)
    assert any(np.allclose(np.asarray(x), 0.001 * 0.25, rtol=1e-4) for x in nu if np.shape(x) == (4,))
    state = free.init(params)
    _, state = free.update(grads, state, params)
    assert any(np.allclose(np.asarray(x), 0.001 * 100, rtol=1e-4) for x in jax.tree.leaves(state) if np.shape(x) == (4,))


def test_drop_last_leaves_out_the_partial_batch():
    data = scalar_data("mse")
    steps = {}
    for drop in (False, True):
        result = fit(lambda rngs: LinearProbe(D, rngs=rngs), data, np.arange(40), np.arange(200, 240),
                     TrainConfig(max_epochs=1, batch_size=16, drop_last=drop), loss="mse", progress=False)
        steps[drop] = result.history["train_loss"][0][0]
    assert steps[False] != steps[True]  # 40 cases: 3 batches (the last padded) or 2 full ones


def test_every_config_train_key_reaches_train_config():
    from jaxprobe import config as config_lib
    from jaxprobe.run import train_config
    from test_config import CONFIGS

    config = config_lib.load(CONFIGS / "ptx_custom.py")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(config.train.keys()) == fields
    with config.unlocked():
        config.train.learning_rates = (1e-3, 1e-2)
        config.train.adam_b1, config.train.adam_eps, config.train.clip_grad_norm = 0.8, 1e-6, 1.0
        config.train.class_weights = (1.0, 5.0)
    t = train_config(config)
    assert t.to_dict() == {k: list(v) if isinstance(v, tuple) else v for k, v in config.train.items()}
    assert t.members() == [(0, 1e-3), (0, 1e-2)]
