"""A user's cohort from one CSV: images, patients, labels / values / masks (mask images or RLE), a split column,
bad rows under the raise/skip policy, and the example config run end to end for all three tasks."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jaxprobe.data import rle
from jaxprobe.data.csvsource import Columns, csv_records, csv_splits
from jaxprobe.errors import DataError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _cohort(tmp_path, rows, header=("image", "patient_id", "label", "value", "mask", "split")):
    path = tmp_path / "cohort.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        _png(tmp_path / "img" / f"{i}.png", rng.integers(0, 255, (20, 30), dtype=np.uint8))
    mask = np.zeros((20, 30), bool)
    mask[5:9, 10:20] = True
    _png(tmp_path / "msk" / "0.png", mask.astype(np.uint8) * 255)
    _png(tmp_path / "msk" / "small.png", np.zeros((10, 10), np.uint8))
    return tmp_path, mask


def test_labels_values_and_masks_in_every_format(files):
    tmp_path, mask = files
    rows = [["img/0.png", "p1", "1", "0.5", "msk/0.png", "train"],
            [str(tmp_path / "img" / "1.png"), "p1", "0", "0.25", "", "train"],  # absolute path, empty mask
            ["img/2.png", "p2", "yes", "1e-1", "", "test"]]
    path = _cohort(tmp_path, rows)
    by_label = csv_records(path, target="label")
    assert [(r.image_id, r.patient_id, r.label) for r in by_label] == [
        ("img/0.png", "p1", 1), ("img/1.png", "p1", 0), ("img/2.png", "p2", 1)]
    assert [r.value for r in csv_records(path, target="value")] == [0.5, 0.25, 0.1]
    by_mask = csv_records(path, target="mask")
    np.testing.assert_array_equal(by_mask[0].mask("mask"), mask)
    assert not by_mask[1].mask("mask").any() and by_mask[0].height == 20 and by_mask[0].width == 30
    assert csv_splits(path, Columns(split="split"), by_mask) == {"img/0.png": "train", "img/1.png": "train",
                                                                 "img/2.png": "test"}
    for fmt, encode in (("siim_rle", rle.encode_siim), ("chexmask_rle", rle.encode_chexmask)):
        path = _cohort(tmp_path, [["img/0.png", "p1", "1", "0", encode(mask), ""]])
        (record,) = csv_records(path, Columns(mask_format=fmt), target="mask")
        np.testing.assert_array_equal(record.mask("mask"), mask)


@pytest.mark.parametrize("target, row, problem", [
    ("label", ["img/9.png", "p1", "1", "0", "", ""], "not found"),
    ("label", ["img/0.png", "", "1", "0", "", ""], "empty 'patient_id'"),
    ("label", ["img/0.png", "p1", "maybe", "0", "", ""], "label 'maybe'"),
    ("value", ["img/0.png", "p1", "1", "nan", "", ""], "expected a finite number"),
    ("mask", ["img/0.png", "p1", "1", "0", "msk/small.png", ""], "mask is 10x10, its image 20x30"),
    ("label", ["img/3.png", "p4", "1", "0", "", ""], "image id img/3.png repeats line 2"),
])
def test_bad_rows_raise_naming_the_line_or_are_skipped_and_listed(files, target, row, problem):
    tmp_path, _ = files
    path = _cohort(tmp_path, [["img/3.png", "p3", "0", "1", "", ""], row])
    with pytest.raises(DataError, match=problem):
        csv_records(path, target=target)
    skipped = tmp_path / "skipped.csv"
    kept = csv_records(path, target=target, on_error="skip", skipped_file=skipped)
    assert [r.image_id for r in kept] == ["img/3.png"] and problem.split()[0] in skipped.read_text()


def test_a_missing_column_names_the_columns(files):
    tmp_path, _ = files
    path = _cohort(tmp_path, [["img/0.png", "p1"]], header=("image", "patient"))
    with pytest.raises(DataError, match=r"missing column\(s\) \['patient_id', 'label'\]"):
        csv_records(path, target="label")
    with pytest.raises(DataError, match=r"missing column\(s\) \['value'\]"):
        csv_records(path, Columns(patient="patient"), target="value")


SMALL = ["--config.data.synthetic.n=48", "--config.data.synthetic.size=96", "--config.encoders.random.width=32",
         "--config.encoders.random.depth=1", "--config.encoders.random.num_heads=1",
         "--config.encoders.rad_dino.input_size=56", "--config.encoders.chexagent.input_size=64",
         "--config.encoders.biomedclip.input_size=64", "--config.demo.train.max_epochs=2",
         "--config.stats.n_resamples=200", "--config.report.overlays=2", "--config.embed.workers=2"]


@pytest.mark.parametrize("task", [
    [],
    ["--config.task=regression", "--config.target=value", "--config.stats.metrics=r2,mse"],
    ["--config.task=segmentation", "--config.target=mask", "--config.head.name=linear_seg",
     "--config.stats.metrics=dice,iou"],
])
def test_the_example_config_runs_every_task_on_a_cohort_csv(tmp_path, task):
    """The shipped configs/csv_cls.py on phantoms written as PNG + CSV (with its own split column)."""
    from jaxprobe.data.csvsource import write_phantom_cohort
    from jaxprobe.run import main

    cohort = Path(write_phantom_cohort(tmp_path / "cohort", n=40, seed=1, size=96))
    with open(cohort) as f:
        rows = list(csv.reader(f))
    rows[0].append("fold")
    for i, r in enumerate(rows[1:]):
        r.append(("train", "train", "train", "val", "test")[int(r[1][len("patient"):]) % 5])
    with open(cohort, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    assert main(["--config", str(CONFIGS / "csv_cls.py"), "--workdir", str(tmp_path / "w"),
                 f"--config.cache_dir={tmp_path / 'c'}", f"--config.data.table.path={cohort}",
                 "--config.data.table.split=fold", *SMALL, *task]) == 0
    results = json.loads((tmp_path / "w" / "results.json").read_text())
    assert results["models"] == ["rad_dino", "chexagent", "biomedclip"] and len(results["metrics"]) == 2
    split = dict(line.split(",") for line in (tmp_path / "w" / "split.csv").read_text().splitlines()[1:])
    expected = {r[0]: r[-1] for r in rows[1:]}
    assert all(split[k] == expected[k] for k in split)  # the cohort's own split, not a seeded one


FIVE_CONFIG = '''"""A user's comparison: the study's three encoders, DINOv3 from the registry and a CLIP declared by hub id, on a
cohort CSV (a test's analysis)."""
from jaxprobe.config import module_beside

common = module_beside(COMMON, None)
csv_cls = module_beside(CSV_CLS, None)


def get_config(arg=None):
    c = csv_cls.get_config(arg)
    c.encoders.names = c.encoders.names + ("dinov3_vitb16", "my_clip")
    c.encoders.dinov3_vitb16 = common.encoder_block()
    c.encoders.my_clip = common.encoder_block(family="clip", checkpoint="radiology/tiny-clip", display_name="My CLIP")
    return c
'''


def test_five_encoders_two_new_families_on_a_cohort_csv(tmp_path):
    """The issue's end-to-end check: five encoders (three of the study, DINOv3 at random init from the registry, a
    transformers CLIP declared in the config alone and given as a hub id, resolved offline from a real cache
    layout and converted with its parity check) on a phantom cohort written as PNG + CSV. Ten pairs under
    Bonferroni, Table 2 rows, the pairwise matrix figure, ROC curves, and where each encoder came from."""
    import os
    import subprocess
    import sys

    from jaxprobe.data.csvsource import write_phantom_cohort
    from reference_models import make_clip

    commit = "fedcba9876543210fedcba9876543210fedcba98"
    repo = tmp_path / "hub" / "models--radiology--tiny-clip"
    make_clip(repo / "snapshots" / commit, full=False, kind="vision_proj", projection_dim=24, preprocessor=None,
              seed=2, num_attention_heads=1)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    cohort = write_phantom_cohort(tmp_path / "cohort", n=40, seed=1, size=96)
    config = tmp_path / "five.py"
    config.write_text(FIVE_CONFIG.replace("COMMON", repr(str(CONFIGS / "common.py")))
                      .replace("CSV_CLS", repr(str(CONFIGS / "csv_cls.py"))))
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-m", "jaxprobe.run", "--config", str(config), "--workdir",
                           str(tmp_path / "w"), f"--config.cache_dir={tmp_path / 'c'}",
                           f"--config.data.table.path={cohort}", *SMALL, "--config.encoders.dinov3_vitb16.input_size=64"],
                          env=env, capture_output=True, text=True, cwd=CONFIGS.parent, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    w = tmp_path / "w"
    results = json.loads((w / "results.json").read_text())
    names = ["rad_dino", "chexagent", "biomedclip", "dinov3_vitb16", "my_clip"]
    assert results["models"] == names
    assert results["settings"]["n_comparisons"] == 10
    assert results["settings"]["bonferroni_threshold"] == pytest.approx(0.05 / 10)
    for metric in results["metrics"].values():
        assert len(metric["pairs"]) == 10 and set(metric["models"]) == set(names)
    assert results["display_names"]["my_clip"] == "My CLIP" and results["display_names"]["dinov3_vitb16"] == "DINOv3"
    enc = results["encoders"]
    assert enc["my_clip"]["hub"] == f"radiology/tiny-clip@{commit}" and enc["my_clip"]["family"] == "clip"
    assert enc["dinov3_vitb16"]["random"] and enc["dinov3_vitb16"]["family"] == "dinov3"
    table = (w / "table.md").read_text()
    assert "| My CLIP |" in table and "| DINOv3 |" in table
    assert len((w / "pairwise.csv").read_text().splitlines()) == 1 + 10 * len(results["metrics"])
    figures = {p.name for p in (w / "report" / "figures").glob("*.png")}
    assert any(n.endswith("_pairwise.png") for n in figures), figures
    assert any("roc" in n for n in figures), figures
    assert "-> passed" in (w / "run.log").read_text()  # the CLIP was converted with its parity check
