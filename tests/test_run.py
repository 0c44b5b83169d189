"""The run end to end on a small synthetic set: every analysis config, the paper's combined report, re-runs
that reuse earlier stages, and clear errors for bad overrides and data roots."""
import json
from pathlib import Path

import pytest

from jaxprobe.run import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ANALYSES = ["ptx_linear", "ptx_custom", "ptx_cls", "heart_linear", "heart_custom", "cmg_cls", "ctr_reg"]
# Reduced sizes: a small phantom set, one-block encoders at small inputs, a few epochs, fewer resamples.
SMALL = ["--config.data.synthetic.n=48", "--config.data.synthetic.size=96", "--config.encoders.random.width=32",
         "--config.encoders.random.depth=1", "--config.encoders.random.num_heads=1",
         "--config.encoders.rad_dino.input_size=56", "--config.encoders.chexagent.input_size=64",
         "--config.encoders.biomedclip.input_size=64", "--config.demo.train.max_epochs=2",
         "--config.stats.n_resamples=300", "--config.report.overlays=2", "--config.embed.workers=2"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _run(config, workdir, cache, *extra):
    return main(["--config", str(CONFIGS / f"{config}.py"), "--workdir", str(workdir),
                 f"--config.cache_dir={cache}", *SMALL, *extra])


def _check_outputs(workdir: Path, analysis: str):
    results = json.loads((workdir / "results.json").read_text())
    assert results["schema"] == "jaxprobe.analysis/1"
    assert results["models"] == ["rad_dino", "chexagent", "biomedclip"]
    for metric in results["metrics"].values():
        for m in metric["models"].values():
            assert m["ci_low"] <= m["estimate"] <= m["ci_high"] or m["estimate"] is None
        assert len(metric["pairs"]) == 3
    settings = results["settings"]
    assert settings["n_resamples"] == 300 and settings["bonferroni_threshold"] == pytest.approx(0.05 / 3)
    assert "| RAD-DINO | CheXagent | BiomedCLIP |" in (workdir / "table.md").read_text()
    assert len((workdir / "pairwise.csv").read_text().splitlines()) == 1 + 3 * len(results["metrics"])
    split = (workdir / "split.csv").read_text().splitlines()
    assert split[0].startswith("image_id") and len(split) > 10
    resolved = json.loads((workdir / "config.json").read_text())
    assert resolved["analysis"] == analysis and resolved["profile"] == "demo"
    assert resolved["train"]["max_epochs"] == 2 and resolved["demo"]["train"]["max_epochs"] == 2
    timings = json.loads((workdir / "timings.json").read_text())
    assert {"inputs", "statistics", "report", "embed:rad_dino", "train:biomedclip"} <= set(timings)
    assert list((workdir / "report" / "figures").glob("*.png"))
    for name in ("rad_dino", "chexagent", "biomedclip"):
        assert (workdir / "predictions" / name / "summary.json").is_file()
    if "segmentation" in results["task"]:
        assert (workdir / "overlays.png").is_file()
    # what researchers read next: curves, trivial baselines, exports
    assert results["baselines"]
    figures = workdir / "report" / "figures"
    assert list(figures.glob("*_learning.png")) and list(figures.glob("*_learning.pdf"))
    for name in ("rad_dino", "chexagent", "biomedclip"):
        history = (workdir / "train" / name / "history.csv").read_text().splitlines()
        assert history[0] == "epoch,member,seed,learning_rate,train_loss,val_loss,active,best" and len(history) >= 2
    for name in ("table2.csv", "table2.tex", "table_s1.csv", "table_s1.tex"):
        assert (workdir / name).is_file()
    assert "\\toprule" in (workdir / "table2.tex").read_text()
    if results["kind"] == "classification" and "skipped" in results["operating_points"]:  # tiny validation set
        assert "one class" in results["operating_points"]["skipped"]
        assert "**Operating point.** Not computed" in (workdir / "table.md").read_text()
    elif results["kind"] == "classification":
        assert set(results["operating_points"]["models"]) == {"rad_dino", "chexagent", "biomedclip"}
        assert (workdir / "operating_points.csv").is_file() and "**Operating point.**" in (workdir / "table.md").read_text()
        assert list(figures.glob("*_roc_pr.png")) and list(figures.glob("*_reliability.png"))
    log = (workdir / "run.log").read_text()
    assert "EMBEDDED DEFAULT" in log
    assert "host memory: " in log  # the malloc policy in force (jaxprobe.hostmem), whatever this process set
    assert "encoder CPU kernels: " in log  # native or XLA, and why (jaxprobe.encoders.cpu_kernels)


def test_prepared_dataset_gives_the_same_inputs(tmp_path, cache):
    """data.prepared reads a TFDS dataset built on first use from the same phantoms; its examples, labels and
    patient-level splits are those of the original files (same seed), so the embeddings are the same too."""
    assert _run("heart_linear", tmp_path / "files", cache) == 0
    assert _run("heart_linear", tmp_path / "prepared", cache, "--config.data.prepared=true") == 0
    assert "prepared dataset" in (tmp_path / "prepared" / "run.log").read_text()
    from jaxprobe.embed import Store

    stores = {}
    for kind in ("files", "prepared"):
        head = json.loads((tmp_path / kind / "predictions" / "chexagent" / "head.json").read_text())
        stores[kind] = Store.open(head["store"])
    files, prepared = stores["files"], stores["prepared"]
    assert files.path != prepared.path and sorted(files.ids) == sorted(prepared.ids)
    order = [files.ids.index(i) for i in prepared.ids]
    import numpy as np

    np.testing.assert_array_equal(files.global_embeddings[order], prepared.global_embeddings)
    np.testing.assert_array_equal(files.array("masks")[order], prepared.array("masks"))
    split_files = dict(line.split(",") for line in (tmp_path / "files" / "split.csv").read_text().splitlines()[1:])
    split_prep = dict(line.split(",") for line in (tmp_path / "prepared" / "split.csv").read_text().splitlines()[1:])
    assert split_files == split_prep


@pytest.mark.parametrize("analysis", ["ptx_cls", "cmg_cls", "ctr_reg"])
def test_balanced_cohort_is_the_same_read_either_way(analysis, tmp_path, cache):
    """One order, split the whole cohort then balance it over the whole cohort: the files and the prepared
    dataset give the same cases (the same seeded negatives) in the same splits."""
    from jaxprobe import tasks
    from jaxprobe.cli import parse_config
    from jaxprobe.inputs import load_inputs

    rare = "--config.data.synthetic.positive_fraction=0.3"  # SIIM phantoms: fewer positives than negatives
    got = {}
    for prepared in ("false", "true"):
        config = parse_config(["--config", str(CONFIGS / f"{analysis}.py"), f"--config.cache_dir={cache}", *SMALL,
                               rare, f"--config.data.prepared={prepared}"], prog="test").config
        workdir = tmp_path / prepared
        workdir.mkdir()
        inputs = load_inputs(config, tasks.get(config.task), workdir)
        got[prepared] = dict(zip(inputs.image_ids, inputs.splits))
        labels = inputs.targets["label"]
        assert config.data.balance and 2 * labels.sum() == len(labels)  # balanced 1:1
    assert got["false"] == got["true"]
    other = parse_config(["--config", str(CONFIGS / f"{analysis}.py"), f"--config.cache_dir={cache}", *SMALL,
                          rare, "--config.data.balance_seed=1"], prog="test").config
    (tmp_path / "seed1").mkdir()
    assert set(load_inputs(other, tasks.get(other.task), tmp_path / "seed1").image_ids) != set(got["false"])


@pytest.mark.parametrize("analysis", ANALYSES)
def test_each_analysis_runs_end_to_end(analysis, tmp_path, cache):
    assert _run(analysis, tmp_path / analysis, cache) == 0
    _check_outputs(tmp_path / analysis, analysis)


def test_rerun_reuses_stores_and_heads(tmp_path, cache, capsys):
    assert _run("ptx_cls", tmp_path / "a", cache) == 0
    assert _run("ptx_cls", tmp_path / "a", cache) == 0
    log = (tmp_path / "a" / "run.log").read_text()
    second = log[log.rindex("[inputs] start"):]
    assert second.count("complete, reusing") == 3 and second.count("predictions exist, skipping training") == 3
    # a changed training setting must not reuse the finished heads silently
    assert _run("ptx_cls", tmp_path / "a", cache, "--config.train.learning_rate=0.001") == 2
    assert "holds predictions of a different set-up (differs in ['train'])" in capsys.readouterr().err
    # nor a changed split (the old results.json came back byte-identical while split.csv showed the new split)
    assert _run("ptx_cls", tmp_path / "a", cache, "--config.data.split_seed=1") == 2
    assert "holds predictions of a different set-up (differs in ['cases'])" in capsys.readouterr().err
    # a kill during training leaves head.json (written first) without summary.json: the re-run trains again
    import shutil

    (tmp_path / "a" / "predictions" / "rad_dino" / "summary.json").unlink()
    shutil.rmtree(tmp_path / "a" / "train" / "rad_dino")
    assert (tmp_path / "a" / "predictions" / "rad_dino" / "head.json").is_file()
    assert _run("ptx_cls", tmp_path / "a", cache) == 0
    assert (tmp_path / "a" / "predictions" / "rad_dino" / "summary.json").is_file()


def test_results_say_which_cpu_kernels_computed_the_embeddings(tmp_path, monkeypatch):
    """Stores are shared across the CPU kernel paths (they agree to float32 rounding); results.json records the
    path that computed each encoder's embeddings, and a run that reuses another path's store says so."""
    from jaxprobe.encoders import cpu_kernels

    cache = tmp_path / "c"
    monkeypatch.setenv("JAXPROBE_CPU_KERNELS", "xla")
    assert _run("ptx_cls", tmp_path / "a", cache) == 0
    monkeypatch.delenv("JAXPROBE_CPU_KERNELS")
    assert _run("ptx_cls", tmp_path / "b", cache) == 0
    for run in ("a", "b"):
        encoders = json.loads((tmp_path / run / "results.json").read_text())["encoders"]
        assert all(e["embedded_with"]["cpu_kernels"] == "XLA (JAXPROBE_CPU_KERNELS=xla)" for e in encoders.values())
    note = "were computed on another path (encoder CPU kernels: XLA (JAXPROBE_CPU_KERNELS=xla))"
    assert (tmp_path / "b" / "run.log").read_text().count(note) == (3 if cpu_kernels.summary().startswith("native")
                                                                     else 0)
    assert "were computed on another path" not in (tmp_path / "a" / "run.log").read_text()
    # a store written before the path was recorded says that it does not know
    for meta in (cache / "embeddings").glob("rad_dino-*/meta.json"):
        values = json.loads(meta.read_text())
        del values["versions"]["cpu_kernels"]
        meta.write_text(json.dumps(values))
    assert _run("ptx_cls", tmp_path / "c", cache) == 0
    log = (tmp_path / "c" / "run.log").read_text()
    assert log.count("does not record which encoder CPU kernels computed it") == 1 and "rad_dino: the store" in log


def test_the_cardiomegaly_analyses_share_one_store_per_encoder(tmp_path):
    """The segmentation analyses build one store per encoder with patch tokens and add their masks as side arrays
    (heart for both heads: one side array); the classification and regression analyses of the same images read
    its global embeddings instead of writing stores of their own."""
    from jaxprobe.embed import Store

    cache = tmp_path / "c"
    for analysis in ("heart_linear", "heart_custom", "cmg_cls", "ctr_reg"):
        assert _run(analysis, tmp_path / analysis, cache) == 0
    stores = sorted(p for p in (cache / "embeddings").iterdir() if p.is_dir())
    assert [p.name.rsplit("-", 1)[0] for p in stores] == ["biomedclip", "chexagent", "rad_dino"]
    for path in stores:
        store = Store.open(path)
        assert store.features == ("global", "patches") and len(store.meta["sides"]) == 1
    for analysis in ("cmg_cls", "ctr_reg"):
        assert (tmp_path / analysis / "run.log").read_text().count("complete, reusing (its global, patches)") == 3


def test_a_global_only_analysis_writes_no_patch_tokens(tmp_path, cache):
    assert _run("ptx_cls", tmp_path / "w", tmp_path / "c") == 0
    stores = [p for p in (tmp_path / "c" / "embeddings").iterdir() if p.is_dir()]
    assert len(stores) == 3 and not any((p / "patches.npy").exists() for p in stores)
    assert all(not list(p.glob("masks-*.npy")) for p in stores)


def test_paper_writes_one_combined_report(tmp_path, cache):
    each = ["--each." + s[len("--config."):] for s in SMALL if "n_resamples" not in s]
    rc = main(["--config", str(CONFIGS / "paper.py"), "--workdir", str(tmp_path), f"--config.cache_dir={cache}",
               "--config.analyses=ptx_linear,ptx_custom,cmg_cls", "--config.n_resamples=300", *each])
    assert rc == 0
    report = (tmp_path / "report" / "report.md").read_text()
    for row in ("pneumothorax segmentation | linear probe", "pneumothorax segmentation | custom model",
                "cardiomegaly classification | linear probe"):
        assert row in report
    assert len(list((tmp_path / "report" / "figures").glob("*.png"))) >= 3
    assert _run("ptx_cls", tmp_path / "w", cache, "--each.train.seeds=1") == 2


def test_bad_override_and_missing_root_are_clear(tmp_path, cache, capsys):
    assert _run("ptx_cls", tmp_path / "x", cache, "--config.train.lr=1") == 2
    assert "unknown key 'lr' in train" in capsys.readouterr().err
    assert _run("ptx_cls", tmp_path / "y", cache, "--config.data.root=/no/such/folder") == 2
    assert "data.root /no/such/folder is not a folder" in capsys.readouterr().err
    assert _run("cmg_cls", tmp_path / "z", cache, "--config.data.nih_root=/no/nih") == 2
    assert "data.chexmask_csv is required" in capsys.readouterr().err


def test_embed_cli_builds_the_stores_the_run_reuses(tmp_path, cache, capsys):
    from jaxprobe.embed.__main__ import main as embed_main

    args = ["--config", str(CONFIGS / "ctr_reg.py"), f"--config.cache_dir={tmp_path / 'c'}",
            f"--config.workdir={tmp_path / 'w'}", *SMALL]
    assert embed_main(args) == 0
    out = capsys.readouterr().out
    assert out.count("records)") == 3
    assert _run("ctr_reg", tmp_path / "w", tmp_path / "c") == 0
    assert (tmp_path / "w" / "run.log").read_text().count("complete, reusing") == 3
    assert embed_main(["--config", str(CONFIGS / "ctr_reg.py"), "--config.embed.batch=4"]) == 2


def test_original_checkpoint_is_converted_on_the_fly_with_its_parity_report(tmp_path, cache):
    """An encoder entry may name an original Hugging Face folder: the run converts it once into the cache,
    keeps parity.json, and uses the converted weights (the other two encoders stay random here)."""
    from reference_models import make_dinov2

    src = make_dinov2(tmp_path / "rad-dino-original", full=False, seed=11)
    args = ("--config.encoders.rad_dino.input_size=0", f"--config.encoders.rad_dino.checkpoint={src}")
    assert _run("cmg_cls", tmp_path / "w", tmp_path / "c", *args) == 0
    converted = list((tmp_path / "c" / "converted").glob("rad_dino-*"))
    assert len(converted) == 1 and json.loads((converted[0] / "parity.json").read_text())["passed"] is True
    log = (tmp_path / "w" / "run.log").read_text()
    assert "parity of rad_dino: worst relative error" in log and "-> passed" in log
    head = json.loads((tmp_path / "w" / "predictions" / "rad_dino" / "head.json").read_text())
    assert head["encoder"]["source"] == str(converted[0]) and head["encoder"]["weights_sha256"]
    assert _run("cmg_cls", tmp_path / "w2", tmp_path / "c", *args) == 0  # second time: from the cache
    assert "converting" not in (tmp_path / "w2" / "run.log").read_text()


def test_authors_protocol_and_unpaired_test_run_end_to_end(tmp_path, cache):
    """--config.protocol=authors sets every key of the authors' block (written into config.json) and
    --config.stats.test=unpaired reaches results.json and the Table S1 caption."""
    for analysis in ("ptx_linear", "ptx_cls"):
        assert _run(analysis, tmp_path / analysis, cache, "--config.protocol=authors", "--config.stats.test=unpaired",
                    "--config.train.batch_size=4") == 0
        resolved = json.loads((tmp_path / analysis / "config.json").read_text())
        assert resolved["protocol"] == "authors" and resolved["train"]["patience"] == 5
        assert resolved["train"]["clip_grad_norm"] == 1.0 and resolved["train"]["drop_last"] is True
        assert resolved["train"]["batch_size"] == 4  # the command line wins over the block
        assert resolved["train"]["max_epochs"] == 2  # and the demo's cap over the authors' 500
        results = json.loads((tmp_path / analysis / "results.json").read_text())
        settings = results["settings"]
        assert settings["test"] == "unpaired" and settings["point_estimate"] == "bootstrap_mean"
        assert set(settings["resample_seeds"]) == {"rad_dino", "chexagent", "biomedclip"}
        assert "Unpaired two-sided bootstrap tests" in (tmp_path / analysis / "table.md").read_text()
        head = json.loads((tmp_path / analysis / "predictions" / "rad_dino" / "head.json").read_text())
        assert head["train"]["clip_grad_norm"] == 1.0 and head["train"]["drop_last"] is True
    assert resolved["stats"]["pr_auc"] == "trapezoid" and settings["pr_auc_definition"] == ["pr_auc_trapezoid"]
    seg = json.loads((tmp_path / "ptx_linear" / "config.json").read_text())
    assert seg["head"]["linear_seg"] == {"classes": 2, "align_corners": True}
    assert seg["train"]["class_weights"] == [1.0, 5.0] and seg["data"]["scaling"] == "minmax"
    assert seg["data"]["mask_resample"] == "bicubic" and seg["data"]["mask_threshold"] == 0.66


def test_summary_and_statistics_agree_on_the_settings(tmp_path, cache):
    """summary.json's Dice follows stats.empty_mask_rule as results.json does, and stats.mask_threshold decides
    the predicted pixels written to segmentation.csv."""
    import csv

    areas = {}
    for threshold in ("0.5", "0.05"):
        wd = tmp_path / threshold
        assert _run("ptx_linear", wd, cache, f"--config.stats.mask_threshold={threshold}") == 0
        results = json.loads((wd / "results.json").read_text())
        assert results["settings"]["mask_threshold"] == float(threshold)
        for name in ("rad_dino", "chexagent", "biomedclip"):
            summary = json.loads((wd / "predictions" / name / "summary.json").read_text())
            assert summary["members"][0]["test_mean_dice"] == pytest.approx(
                results["metrics"]["dice"]["models"][name]["full_sample"], abs=1e-12)
        with open(wd / "predictions" / "chexagent" / "member0" / "segmentation.csv") as f:
            areas[threshold] = sum(int(r["pred_area"]) for r in csv.DictReader(f))
    assert areas["0.05"] > areas["0.5"]


def test_tensorboard_event_files_on_request(tmp_path, cache):
    assert _run("ctr_reg", tmp_path / "tb", cache, "--config.log.tensorboard=true") == 0
    """The validation-loss scalars in the event files (TFRecord framing, tensorboardX's Event protos) are the
    history.csv values."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    folder = tmp_path / "tb" / "train" / "biomedclip"
    [events] = list((folder / "tensorboard").rglob("validation/events.out.tfevents.*"))
    data, values = events.read_bytes(), {}
    while data:
        (length,) = struct.unpack("<Q", data[:8])
        event = Event.FromString(data[12:12 + length])
        data = data[12 + length + 4:]
        for v in event.summary.value:
            values[event.step] = v.simple_value
    history = [line.split(",") for line in (folder / "history.csv").read_text().splitlines()[1:]]
    assert len(values) == len(history) > 1
    for row in history:
        assert values[int(row[0])] == pytest.approx(float(row[5]), rel=1e-6)


def test_the_identity_is_written_before_training(tmp_path, cache, monkeypatch):
    """head.json used to be written after summary.json, so a kill between them left finished predictions with
    no identity and the re-run refused them as "a different set-up"."""
    import jaxprobe.train

    seen = []

    def killed(*args, workdir, **kwargs):
        seen.append((workdir.parents[1] / "predictions" / workdir.name / "head.json").is_file())
        raise KeyboardInterrupt

    monkeypatch.setattr(jaxprobe.train, "fit", killed)
    with pytest.raises(KeyboardInterrupt):
        _run("ptx_cls", tmp_path / "k", cache)
    assert seen == [True]


def test_two_runs_at_once_on_one_cache(tmp_path):
    """Two prepared-dataset runs started together on an empty cache used to die (OSError: Directory not empty,
    or a missing decoded-cache file). With the locks one prepares, generates and extracts while the other
    waits, then reuses; both finish with the same results."""
    import os
    import subprocess
    import sys

    cache = tmp_path / "cache"
    args = [f"--config.cache_dir={cache}", *SMALL, "--config.data.prepared=true"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([sys.executable, "-m", "jaxprobe.run", "--config", str(CONFIGS / "ptx_cls.py"),
                               "--workdir", str(tmp_path / f"w{i}"), *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).resolve().parents[1])
             for i in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert "waiting for another process" in "".join(outputs)
    a, b = (json.loads((tmp_path / f"w{i}" / "results.json").read_text())["metrics"] for i in range(2))
    assert a == b


def test_a_hub_id_resolves_through_the_hugging_face_cache_offline(tmp_path):
    """encoders.<name>.checkpoint may be a hub id: it is resolved by huggingface_hub from a real cache layout
    (models--org--name/refs/main + snapshots/<commit>/), with HF_HUB_OFFLINE=1, then converted with its
    parity check; an id missing from the cache is one clear error."""
    import os
    import subprocess
    import sys

    from reference_models import make_dinov2

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--radiology--tiny-rad-dino"
    make_dinov2(repo / "snapshots" / commit, full=False, seed=5)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "JAX_PLATFORMS": "cpu"}

    def run(checkpoint, workdir):
        return subprocess.run([sys.executable, "-m", "jaxprobe.run", "--config", str(CONFIGS / "cmg_cls.py"),
                               "--workdir", str(tmp_path / workdir), f"--config.cache_dir={tmp_path / 'c'}", *SMALL,
                               "--config.encoders.rad_dino.input_size=0",
                               f"--config.encoders.rad_dino.checkpoint={checkpoint}"],
                              env=env, capture_output=True, text=True, cwd=CONFIGS.parent, timeout=600)

    done = run("radiology/tiny-rad-dino", "w")
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / "w" / "run.log").read_text()
    assert "resolving radiology/tiny-rad-dino through the Hugging Face hub cache" in log and "-> passed" in log
    head = json.loads((tmp_path / "w" / "predictions" / "rad_dino" / "head.json").read_text())
    assert "/converted/rad_dino-" in head["encoder"]["source"] and head["encoder"]["weights_sha256"]
    missing = run("radiology/not-there", "w2")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "radiology/not-there is not in the Hugging Face cache" in missing.stderr
