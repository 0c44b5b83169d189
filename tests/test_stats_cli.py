"""python -m jaxprobe.stats on real prediction files: CSVs, mask-statistics CSVs and PNG mask folders."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxprobe import metrics as M
from jaxprobe.stats import compare_metrics
from jaxprobe.stats.__main__ import main as stats_main


def _write_scores(path, case_ids, y, score):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_id", "y_true", "score"])
        w.writerows(zip(case_ids, y, score))


@pytest.fixture
def classification_files(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    ids = [f"case{i:03d}" for i in range(n)]
    y = (rng.random(n) < 0.4).astype(int)
    paths = {}
    for name, strength in (("rad_dino", 2.0), ("biomedclip", 0.5)):
        order = rng.permutation(n)                         # files need not share an order
        score = rng.normal(strength * y, 1)
        _write_scores(tmp_path / f"{name}.csv", [ids[i] for i in order], y[order], score[order])
        paths[name] = (tmp_path / f"{name}.csv", dict(zip(ids, score)))
    return ids, y, paths


def test_cli_classification_matches_the_python_api(classification_files, tmp_path):
    ids, y, paths = classification_files
    out = tmp_path / "run"
    rc = stats_main(["--metric", "auroc", "--metric", "auprc", "--n-resamples", "300", "--seed", "4",
                     "--task", "pneumothorax classification", "--scenario", "linear probe", "--out", str(out)]
                    + sum((["--pred", f"{m}={p}"] for m, (p, _) in paths.items()), []))
    assert rc == 0
    data = json.loads((out / "results.json").read_text())
    assert data["task"] == "pneumothorax classification" and data["scenario"] == "linear probe"
    assert data["kind"] == "classification" and data["n_cases"] == 120
    assert data["settings"]["stratified"] is True and data["settings"]["seed"] == 4
    scores = {m: np.array([s[i] for i in ids]) for m, (_, s) in paths.items()}
    api = compare_metrics(["auroc", "auprc"], y, scores, n_resamples=300, seed=4)
    for metric in ("auroc", "average_precision"):
        got = data["metrics"][metric]
        for m in scores:
            assert got["models"][m]["estimate"] == pytest.approx(api[metric].models[m].estimate, abs=1e-12)
            assert got["models"][m]["ci_low"] == pytest.approx(api[metric].models[m].ci_low, abs=1e-12)
        assert got["pairs"][0]["p_value"] == pytest.approx(api[metric].pairs[0].p_value)
    assert "delong" in data["metrics"]["auroc"]
    table = (out / "table.md").read_text()
    assert "| pneumothorax classification | linear probe | AUROC |" in table and "RAD-DINO" in table
    rows = list(csv.DictReader(open(out / "pairwise.csv")))
    assert [r["metric"] for r in rows] == ["auroc", "average_precision"]
    assert rows[0]["model_a"] == "rad_dino" and rows[0]["significant"] in ("yes", "no")


def test_mismatched_case_ids_are_reported(classification_files, tmp_path, capsys):
    ids, y, paths = classification_files
    short = tmp_path / "short.csv"
    _write_scores(short, ids[:-2], y[:-2], np.zeros(len(ids) - 2))
    args = ["--metric", "auroc", "--n-resamples", "50", "--task", "t", "--out", str(tmp_path / "r"),
            "--pred", f"a={paths['rad_dino'][0]}", "--pred", f"b={short}"]
    _fails(capsys, r"different cases.*case118", args)
    assert stats_main(args + ["--intersect"]) == 0
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["n_cases"] == len(ids) - 2
    assert data["cases"]["n_dropped_per_model"] == {"a": 2, "b": 0}


def test_conflicting_labels_and_bad_rows_name_the_file(classification_files, tmp_path, capsys):
    ids, y, paths = classification_files
    flipped = tmp_path / "flipped.csv"
    _write_scores(flipped, ids, 1 - y, np.zeros(len(ids)))
    _fails(capsys, "y_true of case 'case000'", ["--metric", "auroc", "--task", "t", "--out", str(tmp_path / "r"),
                                                "--pred", f"a={paths['rad_dino'][0]}", "--pred", f"b={flipped}"])
    broken = tmp_path / "broken.csv"
    broken.write_text("case_id,y_true,score\nx,1,0.3\ny,0,high\n")
    _fails(capsys, r"broken.csv, line 3 \(case 'y'\)",
           ["--metric", "auroc", "--task", "t", "--out", str(tmp_path / "r"), "--pred", f"a={broken}"])
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,label,prob\nx,1,0.3\n")
    _fails(capsys, "missing column",
           ["--metric", "auroc", "--task", "t", "--out", str(tmp_path / "r"), "--pred", f"a={wrong}"])


def _fails(capsys, pattern, args):
    """The command refuses the input: exit status 2 and ``error: ...`` matching ``pattern``, no traceback."""
    import re

    assert stats_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(pattern, err) and "Traceback" not in err, err


def _masks(seed, n=12, size=24):
    rng = np.random.default_rng(seed)
    true = np.zeros((n, size, size), bool)
    for i in range(n):
        r, c = rng.integers(2, 12, 2)
        true[i, r:r + 8, c:c + 9] = True
    true[0] = False
    return true


def test_cli_segmentation_from_mask_folders_and_statistics(tmp_path):
    true = _masks(0)
    rng = np.random.default_rng(1)
    (tmp_path / "true").mkdir()
    stats_files = {}
    for i, m in enumerate(true):
        Image.fromarray((m * 255).astype(np.uint8)).save(tmp_path / "true" / f"img{i}.png")
    probs = {}
    for name, noise in (("rad_dino", 0.3), ("chexagent", 0.6)):
        probs[name] = np.clip(true * 0.7 + rng.random(true.shape) * noise, 0, 1)
        folder = tmp_path / name
        folder.mkdir()
        for i, p in enumerate(probs[name]):
            Image.fromarray(np.round(p * 255).astype(np.uint8)).save(folder / f"img{i}.png")
        s = M.mask_statistics(np.round(probs[name] * 255) / 255, true)
        stats_files[name] = tmp_path / f"{name}_stats.csv"
        with open(stats_files[name], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["case_id", "intersection", "pred_area", "true_area"])
            w.writerows(zip([f"img{i}" for i in range(len(true))], s.intersection, s.pred_area, s.true_area))
    common = ["--metric", "dice", "--metric", "iou", "--n-resamples", "200", "--empty-mask-rule", "one",
              "--task", "pneumothorax segmentation", "--scenario", "custom model"]
    assert stats_main(common + ["--out", str(tmp_path / "from_png"), "--true-masks", str(tmp_path / "true")]
                      + [f"--pred={m}={tmp_path / m}" for m in probs]) == 0
    assert stats_main(common + ["--out", str(tmp_path / "from_csv")]
                      + [f"--pred={m}={p}" for m, p in stats_files.items()]) == 0
    a = json.loads((tmp_path / "from_png" / "results.json").read_text())
    b = json.loads((tmp_path / "from_csv" / "results.json").read_text())
    assert a["metrics"] == b["metrics"]
    assert a["settings"]["empty_mask_rule"] == "one" and a["kind"] == "segmentation"
    expected = np.mean(M.dice(np.round(probs["rad_dino"] * 255) / 255, true, "one"))
    assert a["metrics"]["dice"]["models"]["rad_dino"]["estimate"] == pytest.approx(expected, abs=1e-12)


def test_label_masks_saved_as_zero_one_are_not_read_as_probabilities(tmp_path, capsys):
    true = _masks(2, n=3)
    for folder in ("true", "pred"):
        (tmp_path / folder).mkdir()
        for i, m in enumerate(true):
            Image.fromarray(m.astype(np.uint8)).save(tmp_path / folder / f"c{i}.png")
    args = ["--metric", "dice", "--n-resamples", "20", "--task", "t", "--out", str(tmp_path / "r"),
            "--true-masks", str(tmp_path / "true"), f"--pred=a={tmp_path / 'pred'}"]
    _fails(capsys, "--mask-values label", args)
    (tmp_path / "pred" / "c2.png").rename(tmp_path / "c2.png")
    _fails(capsys, r"no predicted mask for 1 true masks.*'c2'", args + ["--mask-values", "label"])
    (tmp_path / "c2.png").rename(tmp_path / "pred" / "c2.png")
    assert stats_main(args + ["--mask-values", "label"]) == 0
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    assert data["metrics"]["dice"]["models"]["a"]["estimate"] == pytest.approx(2 / 3)   # case 0 both empty -> 0


def test_module_runs_as_a_script(classification_files, tmp_path):
    ids, y, paths = classification_files
    p = subprocess.run([sys.executable, "-m", "jaxprobe.stats", "--metric", "auroc", "--n-resamples", "50",
                        "--task", "t", "--out", str(tmp_path / "r"), "--pred", f"a={paths['rad_dino'][0]}"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "| t | linear probe | AUROC |" in p.stdout
