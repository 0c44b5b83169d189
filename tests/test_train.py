"""Training on constructed features whose answer is known; prediction and its files, members, resume, errors."""
import csv
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from sklearn.metrics import r2_score, roc_auc_score

from jaxprobe.heads import CrossAttentionSegmenter, LinearProbe, LinearSegProbe, resize_bilinear
from jaxprobe import predictions
from jaxprobe.train import ProbeData, TrainConfig, fit, predict

G, C, S, D = 6, 8, 24, 5
TINY = dict(widths=(8, 8), refine_size=12, num_heads=2, attention_dim=8)


def segmentation_data(n=96, seed=0):
    """Channel 0 of the patch map is +-2 on a random rectangle of patches; the mask is that rectangle drawn at
    the input size (its bilinear upsampling thresholded at one half), so a 1x1 conv can reproduce it."""
    rng = np.random.default_rng(seed)
    indicator = np.zeros((n, G, G), np.float32)
    for i in range(n):
        y, x = rng.integers(0, G - 2, 2)
        h, w = rng.integers(2, 4, 2)
        indicator[i, y:y + h, x:x + w] = 1
    patches = rng.normal(size=(n, G, G, C)).astype(np.float16)
    patches[..., 0] = (indicator * 2 - 1) * 2
    masks = (np.asarray(resize_bilinear(indicator[..., None], S))[..., 0] > 0.5).astype(np.uint8)
    features = {"patches": patches, "global": rng.normal(size=(n, D)).astype(np.float32)}
    return ProbeData(features, masks, [f"case{i}" for i in range(n)])


def scalar_data(kind, n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(np.float32)
    signal = x @ np.array([1.0, -2.0, 0.5, 0.0, 1.5], np.float32)
    if kind == "bce":
        targets = (signal + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
    else:
        targets = (0.5 * signal + 2.0 + 0.1 * rng.normal(size=n)).astype(np.float32)
    return ProbeData({"global": x}, targets, [f"id,{i}" for i in range(n)])  # a comma must survive the CSV


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


SPLIT = (np.arange(64), np.arange(64, 80), np.arange(80, 96))


def test_linear_seg_probe_learns_a_mask_contained_in_the_features(tmp_path):
    data = segmentation_data()
    config = TrainConfig(learning_rate=3e-2, max_epochs=25)
    result = fit(lambda rngs: LinearSegProbe(C, G, S, rngs=rngs), data, *SPLIT[:2], config, loss="bce",
                 progress=False)
    with predictions.MaskFiles(tmp_path, "enc", len(SPLIT[2])) as sink:
        test = predict(result, data, SPLIT[2][::-1], progress=False, mask_sink=sink)
    summary = predictions.write(tmp_path, "enc", result, test, empty_mask_rule="zero")
    rows = read_csv(tmp_path / "predictions" / "enc" / "member0" / "segmentation.csv")
    masks = np.load(tmp_path / "predictions" / "enc" / "member0" / "masks.npy")
    assert [r["case_id"] for r in rows] == [f"case{i}" for i in SPLIT[2]]  # increasing row order
    assert test.case_ids.tolist() == [f"case{i}" for i in SPLIT[2]] and test.intersection.dtype == np.int64
    np.testing.assert_array_equal(test.intersection[0], [int(r["intersection"]) for r in rows])
    assert predictions.load_masks(tmp_path, "enc")[0] == test.case_ids.tolist()
    truth = data.targets[SPLIT[2]].astype(bool)
    np.testing.assert_array_equal([int(r["intersection"]) for r in rows], (masks & truth).sum((1, 2)))
    np.testing.assert_array_equal([int(r["pred_area"]) for r in rows], masks.sum((1, 2)))
    np.testing.assert_array_equal([int(r["true_area"]) for r in rows], truth.sum((1, 2)))
    # the saved masks are the head's own thresholded output
    logits = result.head(0)(np.asarray(data.features["patches"][SPLIT[2]], np.float32))
    np.testing.assert_array_equal(masks, np.asarray(logits) >= 0)
    dice = [2 * int(r["intersection"]) / (int(r["pred_area"]) + int(r["true_area"])) for r in rows]
    assert np.mean(dice) > 0.9
    assert summary["members"][0]["test_mean_dice"] == pytest.approx(np.mean(dice))
    assert summary["config"]["learning_rate"] == 3e-2 and summary["config"]["patience"] == 10


def test_cross_attention_segmenter_learns_the_mask(tmp_path):
    data = segmentation_data()
    config = TrainConfig(learning_rate=1e-2, max_epochs=20)
    result = fit(lambda rngs: CrossAttentionSegmenter(C, D, G, S, rngs=rngs, **TINY), data, *SPLIT[:2], config,
                 loss="bce", progress=False)
    predictions.write(tmp_path, "enc", result, predict(result, data, SPLIT[2], progress=False),
                      empty_mask_rule="zero")
    rows = read_csv(tmp_path / "predictions" / "enc" / "member0" / "segmentation.csv")
    assert not (tmp_path / "predictions" / "enc" / "member0" / "masks.npy").exists()
    dice = [2 * int(r["intersection"]) / (int(r["pred_area"]) + int(r["true_area"])) for r in rows]
    assert np.mean(dice) > 0.9


@pytest.mark.parametrize("kind", ["bce", "mse"])
def test_linear_probe_learns_labels_and_ctr(tmp_path, kind):
    data = scalar_data(kind)
    config = TrainConfig(learning_rate=3e-2, max_epochs=40, seeds=(0, 1))
    result = fit(lambda rngs: LinearProbe(D, rngs=rngs), data, np.arange(200), np.arange(200, 240), config,
                 loss=kind, progress=False)
    test = predict(result, data, np.arange(240, 300), progress=False)
    summary = predictions.write(tmp_path, "enc", result, test, empty_mask_rule="zero")
    assert test.outputs.shape == test.loss.shape == (2, 60) and test.intersection is None
    for k in range(2):
        rows = read_csv(tmp_path / "predictions" / "enc" / f"member{k}" / "predictions.csv")
        np.testing.assert_array_equal(np.load(tmp_path / "predictions" / "enc" / f"member{k}" / "logits.npy"),
                                      test.outputs[k])
        assert rows[0]["case_id"] == "id,240"
        y_true = np.array([float(r["y_true"]) for r in rows])
        score = np.array([float(r["score"]) for r in rows])
        np.testing.assert_array_equal(y_true, data.targets[240:])
        if kind == "bce":
            assert roc_auc_score(y_true, score) > 0.95
            assert summary["members"][k]["test_auroc"] == pytest.approx(roc_auc_score(y_true, score))
            assert 0 <= score.min() and score.max() <= 1
        else:
            assert r2_score(y_true, score) > 0.9
            assert summary["members"][k]["test_r2"] == pytest.approx(r2_score(y_true, score))
    assert set(summary["spread"]) >= {"test_loss", "best_val_loss"}


def test_early_stopping_stops_and_keeps_the_best_weights():
    """Train targets are 2x, validation targets 1x: the slope passes the validation optimum and moves on, so
    the validation loss falls, then rises."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 1)).astype(np.float32)
    y = np.where(np.arange(96) < 64, 2.0, 1.0).astype(np.float32) * x[:, 0]
    data = ProbeData({"global": x}, y, [str(i) for i in range(96)])
    config = TrainConfig(learning_rate=2e-2, weight_decay=0.0, max_epochs=200, patience=4)
    seen = []
    result = fit(lambda rngs: LinearProbe(1, rngs=rngs), data, np.arange(64), np.arange(64, 96), config,
                 loss="mse", progress=False, on_epoch_end=lambda epoch, record: seen.append(record["val_loss"][0]))
    member = result.members[0]
    assert member["early_stopped"] and member["epochs_trained"] < 200
    best = int(np.argmin(seen))
    assert member["best_epoch"] == best and member["epochs_trained"] == best + 1 + config.patience
    assert len(seen) == member["epochs_trained"]
    head = result.head(0)
    slope, bias = float(head.dense.kernel[...][0, 0]), float(head.dense.bias[...][0])
    restored_val = np.mean((slope * x[64:, 0] + bias - y[64:]) ** 2)
    assert restored_val == pytest.approx(seen[best], rel=1e-4)
    assert restored_val < seen[-1]


def test_the_best_epochs_batch_norm_statistics_come_back_with_its_weights():
    """The kept head is the best epoch's whole state: its weights and its BatchNorm running statistics. Validation
    masks are the complement of the drawn rectangles, so the validation loss rises as the segmenter learns and
    training runs ``patience`` epochs past the best one. The returned head in evaluation mode must reproduce the
    best epoch's recorded validation loss (BCE of logits from its definition, over every pixel of every case)."""
    data = segmentation_data()
    targets = data.targets.copy()
    targets[SPLIT[1]] = 1 - targets[SPLIT[1]]
    data = ProbeData(data.features, targets, data.case_ids)
    config = TrainConfig(learning_rate=1e-2, max_epochs=12, patience=3)
    result = fit(lambda rngs: CrossAttentionSegmenter(C, D, G, S, rngs=rngs, **TINY), data, *SPLIT[:2], config,
                 loss="bce", progress=False)
    member = result.members[0]
    best = member["best_epoch"]
    assert member["early_stopped"] and best < member["epochs_trained"] - 1
    val_losses = [v[0] for v in result.history["val_loss"]]
    assert val_losses[best] == member["best_val_loss"] < val_losses[-1]
    head = result.head(0)
    logits = np.asarray(head(np.asarray(data.features["patches"][SPLIT[1]], np.float32),
                             data.features["global"][SPLIT[1]]), np.float64)
    y = targets[SPLIT[1]].astype(np.float64)
    restored = np.mean(np.logaddexp(0.0, logits) - logits * y)
    assert restored == pytest.approx(val_losses[best], rel=1e-5)


def test_the_first_epochs_training_loss_is_the_mean_loss_of_the_initial_head():
    """The reported training loss is the mean per-case loss. With one (padded) batch, the first epoch's is the
    initial head's loss over the training set; with a learning rate of 0, so is the loss of every batch of an
    epoch of several batches (the last padded). Oracles: scikit-learn's log loss and the squared error written out,
    from the initial weights (member seed 3)."""
    from flax import nnx
    from scipy.special import expit
    from sklearn.metrics import log_loss

    train, val = np.arange(40), np.arange(200, 240)
    initial = LinearProbe(D, rngs=nnx.Rngs(3))
    w, b = np.asarray(initial.dense.kernel[...], np.float64)[:, 0], float(initial.dense.bias[...][0])
    for kind, config in (("bce", TrainConfig(learning_rate=1e-2, max_epochs=1, batch_size=64, seeds=(3,))),
                         ("mse", TrainConfig(learning_rate=0.0, max_epochs=2, batch_size=16, seeds=(3,)))):
        data = scalar_data(kind)
        logits = data.features["global"][train].astype(np.float64) @ w + b
        y = data.targets[train].astype(np.float64)
        expected = log_loss(y, expit(logits)) if kind == "bce" else np.mean((logits - y) ** 2)
        result = fit(lambda rngs: LinearProbe(D, rngs=rngs), data, train, val, config, loss=kind, progress=False)
        for epoch_losses in result.history["train_loss"]:
            assert epoch_losses[0] == pytest.approx(expected, rel=1e-5), kind


def test_members_are_the_runs_they_replace():
    data = scalar_data("bce")
    make = lambda rngs: LinearProbe(D, rngs=rngs)  # noqa: E731
    split = (np.arange(200), np.arange(200, 240))
    grid = fit(make, data, *split, TrainConfig(learning_rate=3e-2, seeds=(0, 1, 2), max_epochs=6), loss="bce",
               progress=False)
    alone = fit(make, data, *split, TrainConfig(learning_rate=3e-2, seeds=(1,), max_epochs=6), loss="bce",
                progress=False)
    np.testing.assert_allclose(np.array(grid.history["val_loss"])[:, 1], np.array(alone.history["val_loss"])[:, 0],
                               rtol=1e-5)
    np.testing.assert_allclose(grid.head(1).dense.kernel[...], alone.head(0).dense.kernel[...], rtol=1e-5,
                               atol=1e-6)
    rates = fit(make, data, *split, TrainConfig(learning_rates=(1e-3, 1e-1), max_epochs=6), loss="bce",
                progress=False)
    fast = fit(make, data, *split, TrainConfig(learning_rate=1e-1, max_epochs=6), loss="bce", progress=False)
    np.testing.assert_allclose(np.array(rates.history["val_loss"])[:, 1], np.array(fast.history["val_loss"])[:, 0],
                               rtol=1e-5)
    assert [m["learning_rate"] for m in rates.members] == [1e-3, 1e-1]
    assert rates.history["val_loss"][-1][0] != pytest.approx(rates.history["val_loss"][-1][1])


def test_memmaps_and_device_resident_data_give_the_same_training(tmp_path):
    data = segmentation_data()
    patches = np.lib.format.open_memmap(tmp_path / "p.npy", mode="w+", dtype=np.float16,
                                        shape=data.features["patches"].shape)
    patches[:] = data.features["patches"]
    patches.flush()
    mapped = ProbeData({"patches": np.load(tmp_path / "p.npy", mmap_mode="r")}, data.targets, data.case_ids)
    make = lambda rngs: LinearSegProbe(C, G, S, rngs=rngs)  # noqa: E731
    config = TrainConfig(learning_rate=1e-2, max_epochs=3)
    runs = [fit(make, d, *SPLIT[:2], c, loss="bce", progress=False)
            for d, c in ((data, config), (mapped, config), (mapped, TrainConfig(learning_rate=1e-2, max_epochs=3,
                                                                                  data_on_device=True)))]
    for run in runs[1:]:
        np.testing.assert_allclose(run.history["val_loss"], runs[0].history["val_loss"], rtol=1e-6)


def test_non_finite_loss_names_head_member_epoch_and_step():
    data = scalar_data("mse")
    data.features["global"][17, 2] = np.nan
    order = np.random.default_rng([0, 0]).permutation(np.arange(200))
    step = int(np.where(order == 17)[0][0]) // 16
    with pytest.raises(FloatingPointError, match=rf"ctr-probe: non-finite training loss nan for member 0 "
                                                 rf"\(seed 0, learning rate 0.0001\) at epoch 0, step {step}"):
        fit(lambda rngs: LinearProbe(D, rngs=rngs), data, np.arange(200), np.arange(200, 240), TrainConfig(),
            loss="mse", name="ctr-probe", progress=False)


class Interrupted(Exception):
    pass


def _fit_killed_after(epoch, make, data, config, workdir):
    """A training in ``workdir`` that dies (as a kill would) right after epoch ``epoch`` has ended."""
    def stop(e, record):
        if e == epoch:
            raise Interrupted

    with pytest.raises(Interrupted):
        fit(make, data, *SPLIT[:2], config, loss="bce", workdir=workdir, progress=False, on_epoch_end=stop)


def test_an_interrupted_training_resumes_to_the_same_result(tmp_path):
    data = segmentation_data()
    make = lambda rngs: CrossAttentionSegmenter(C, D, G, S, rngs=rngs, **TINY)  # noqa: E731
    config = TrainConfig(learning_rate=1e-2, max_epochs=4, seeds=(0, 1))
    whole = fit(make, data, *SPLIT[:2], config, loss="bce", progress=False)

    _fit_killed_after(1, make, data, config, tmp_path)
    epochs_run = []
    resumed = fit(make, data, *SPLIT[:2], config, loss="bce", workdir=tmp_path, progress=False,
                  on_epoch_end=lambda epoch, record: epochs_run.append(epoch))
    assert epochs_run == [2, 3]
    np.testing.assert_allclose(resumed.history["val_loss"], whole.history["val_loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves((resumed.params, resumed.batch_stats)),
                    jax.tree.leaves((whole.params, whole.batch_stats))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # a finished run is not trained again
    again = fit(make, data, *SPLIT[:2], config, loss="bce", workdir=tmp_path, progress=False,
                on_epoch_end=lambda epoch, record: pytest.fail("a finished training ran again"))
    assert again.members == resumed.members
    with pytest.raises(ValueError, match=r"holds a checkpoint of a different training \(differs in \['config'\]\)"):
        fit(make, data, *SPLIT[:2], TrainConfig(learning_rate=1e-3, max_epochs=4, seeds=(0, 1)), loss="bce",
            workdir=tmp_path, progress=False)


def test_sparse_checkpoints_resume_by_replaying_and_history_csv_follows(tmp_path):
    """checkpoint_every=3: a kill after epoch 4 resumes from the epoch-3 checkpoint, replays epoch 4 to the same
    numbers, and history.csv holds each epoch once, with the member's lowest validation loss marked best."""
    data = segmentation_data()
    make = lambda rngs: CrossAttentionSegmenter(C, D, G, S, rngs=rngs, **TINY)  # noqa: E731
    config = TrainConfig(learning_rate=1e-2, max_epochs=6, seeds=(0, 1), checkpoint_every=3, patience=50)
    whole = fit(make, data, *SPLIT[:2], config, loss="bce", progress=False)

    _fit_killed_after(4, make, data, config, tmp_path)
    assert len(read_csv(tmp_path / "history.csv")) == 2 * 5  # written as training went, past the checkpoint
    epochs_run = []
    resumed = fit(make, data, *SPLIT[:2], TrainConfig(**{**config.to_dict(), "seeds": (0, 1), "checkpoint_every": 1}),
                  loss="bce", workdir=tmp_path, progress=False,
                  on_epoch_end=lambda epoch, record: epochs_run.append(epoch))
    assert epochs_run == [3, 4, 5]  # checkpoint_every is not part of the training's identity
    np.testing.assert_allclose(resumed.history["val_loss"], whole.history["val_loss"], rtol=1e-5)
    rows = read_csv(tmp_path / "history.csv")
    assert [(int(r["epoch"]), int(r["member"])) for r in rows] == [(e, k) for e in range(6) for k in (0, 1)]
    for k, seed in enumerate((0, 1)):
        mine = [r for r in rows if int(r["member"]) == k]
        val = np.array([float(r["val_loss"]) for r in mine])
        np.testing.assert_allclose(val, np.array(whole.history["val_loss"])[:, k], rtol=1e-5)
        assert {int(r["seed"]) for r in mine} == {seed} and {float(r["learning_rate"]) for r in mine} == {1e-2}
        best = [int(r["epoch"]) for r in mine if r["best"] == "1"]
        assert best[-1] == int(np.argmin(val)) == resumed.members[k]["best_epoch"]
        assert all(val[e] < val[:e].min() for e in best[1:])  # each "best" row set a new lowest loss


def _damage(step_dir: pathlib.Path) -> None:
    for f in step_dir.rglob("*"):
        if f.is_file():
            f.write_bytes(b"\x00garbage")


def test_a_damaged_checkpoint_falls_back_to_the_older_step(tmp_path):
    """Raw Orbax/JSON errors used to stop the run; now the older step Orbax keeps is used, and when no step is
    readable the error says which folder to delete."""
    from jaxprobe.errors import CheckpointError

    data = scalar_data("bce", n=96)
    make = lambda rngs: LinearProbe(D, rngs=rngs)  # noqa: E731
    config = TrainConfig(learning_rate=1e-2, max_epochs=4, patience=50)
    whole = fit(make, data, *SPLIT[:2], config, loss="bce", workdir=tmp_path, progress=False)
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [3, 4]
    _damage(tmp_path / "checkpoints" / "4")
    epochs_run = []
    again = fit(make, data, *SPLIT[:2], config, loss="bce", workdir=tmp_path, progress=False,
                on_epoch_end=lambda epoch, record: epochs_run.append(epoch))
    assert epochs_run == [3]  # resumed from step 3 and replayed the last epoch
    np.testing.assert_allclose(again.history["val_loss"], whole.history["val_loss"], rtol=1e-6)
    for p in (tmp_path / "checkpoints").iterdir():
        if p.name.isdigit():
            _damage(p)
    with pytest.raises(CheckpointError, match=r"no readable checkpoint.*delete .*checkpoints to train from the start"):
        fit(make, data, *SPLIT[:2], config, loss="bce", workdir=tmp_path, progress=False)


MULTI_DEVICE = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    sys.path[:0] = [".", "tests"]  # by file, not as a "tests" package (an installed one would shadow it)
    from test_train import segmentation_data, C, D, G, S, TINY, SPLIT
    from jaxprobe.heads import CrossAttentionSegmenter
    from jaxprobe.train import TrainConfig, data_mesh, fit
    assert len(jax.devices()) == 4, jax.devices()
    data = segmentation_data()
    config = TrainConfig(learning_rate=1e-2, max_epochs=3, batch_size=12, eval_batch_size=8, seeds=(0, 1))
    make = lambda rngs: CrossAttentionSegmenter(C, D, G, S, rngs=rngs, **TINY)
    # 64 training cases in batches of 12: the last batch is padded, and the padding spans two devices
    runs = [fit(make, data, *SPLIT[:2], config, loss="bce", mesh=data_mesh(jax.devices()[:n]), progress=False)
            for n in (1, 4)]
    try:
        fit(make, data, *SPLIT[:2], TrainConfig(batch_size=10), loss="bce", mesh=data_mesh(), progress=False)
        error = None
    except ValueError as e:
        error = str(e)
    print(json.dumps({"histories": [r.history for r in runs], "error": error}))
""")


def test_four_devices_give_the_loss_curve_of_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    root = pathlib.Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", MULTI_DEVICE], cwd=root, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    one, four = report["histories"]
    np.testing.assert_allclose(four["train_loss"], one["train_loss"], rtol=1e-5)
    # The conv biases in front of BatchNorm have a zero gradient in exact arithmetic; Adam normalises their
    # rounding noise (which differs with the reduction order across devices) into steps of up to the learning
    # rate. Training-mode outputs cannot see them, but the running means lag behind them, so evaluation-mode
    # losses agree only to about 1e-3 (any change of summation order does this, on any framework).
    np.testing.assert_allclose(four["val_loss"], one["val_loss"], rtol=1e-2)
    assert "batch_size=10 must be a multiple of the 4 devices" in report["error"]


def test_bad_inputs_are_named():
    data = segmentation_data(n=20)
    make = lambda rngs: LinearSegProbe(C, G, S, rngs=rngs)  # noqa: E731
    with pytest.raises(ValueError, match=r"segmentation targets must be masks of shape \(20, 30, 30\)"):
        fit(lambda rngs: LinearSegProbe(C, G, 30, rngs=rngs), data, [0], [1], loss="bce", progress=False)
    with pytest.raises(ValueError, match=r"needs features \['patches', 'global'\], data lacks \['global'\]"):
        fit(lambda rngs: CrossAttentionSegmenter(C, D, G, S, rngs=rngs, **TINY),
            ProbeData({"patches": data.features["patches"]}, data.targets, data.case_ids), [0], [1], loss="bce",
            progress=False)
    with pytest.raises(ValueError, match="segmentation heads train with loss 'bce'"):
        fit(make, data, [0], [1], loss="mse", progress=False)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 20\)"):
        fit(make, data, [0, 25], [1], loss="bce", progress=False)
    with pytest.raises(ValueError, match="3 seeds and 2 learning_rates"):
        TrainConfig(seeds=(0, 1, 2), learning_rates=(1e-3, 1e-2))
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_dict({"lr": 1e-3})
    with pytest.raises(ValueError, match=r"ProbeData: targets has 19 rows, case_ids has 20"):
        ProbeData(data.features, data.targets[:19], data.case_ids)
