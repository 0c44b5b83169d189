"""jaxprobe.report over several run directories: tables, figures, errors."""
import csv
import json

import matplotlib.axes
import numpy as np
import pytest
from PIL import Image

from jaxprobe import metrics as M
from jaxprobe import figures, report, results
from jaxprobe.stats import compare_metrics

ENCODERS = ("rad_dino", "chexagent", "biomedclip")


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    true_area = rng.integers(100, 900, 150)
    dirs = []
    for scenario, quality in (("linear probe", (0.5, 0.3, 0.3)), ("custom model", (0.7, 0.5, 0.5))):
        stats = {}
        for e, q in zip(ENCODERS, quality):
            inter = (true_area * np.clip(rng.normal(q, 0.1, 150), 0, 1)).astype(int)
            stats[e] = M.MaskStatistics(inter, inter + rng.integers(0, 300, 150), true_area)
        # chexagent and biomedclip are drawn equally good: their pair should come out "ns".
        d = root / f"seg_{scenario.split()[0]}"
        results.write_analysis(d, task="pneumothorax segmentation", scenario=scenario, kind="segmentation",
                               comparisons=compare_metrics(["dice", "iou"], None, stats, n_resamples=300))
        dirs.append(d)
    y = (rng.random(200) < 0.5).astype(int)
    preds = {e: rng.normal(y * s, 1) for e, s in zip(ENCODERS, (2.0, 1.0, 0.5))}
    d = root / "cls"
    results.write_analysis(d, task="cardiomegaly classification", scenario="linear probe", kind="classification",
                           comparisons=compare_metrics(["auroc", "auprc"], y, preds, n_resamples=300))
    dirs.append(d)
    target = rng.normal(0.5, 0.05, 300)
    d = root / "ctr"
    results.write_analysis(d, task="CTR regression", scenario="linear probe", kind="regression",
                           comparisons=compare_metrics(["r2", "mse"], target,
                                                       {e: target + rng.normal(0, s, 300) for e, s in
                                                        zip(ENCODERS, (0.02, 0.03, 0.04))}, n_resamples=300))
    dirs.append(d)
    return dirs


def test_report_collects_tables_and_figures(run_dirs, tmp_path, monkeypatch):
    texts = []
    original = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda self, x, y, s, *a, **k: (texts.append(s), original(self, x, y, s, *a, **k))[1])
    assert report.main([str(d) for d in run_dirs] + ["--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    for task in ("pneumothorax segmentation", "cardiomegaly classification", "CTR regression"):
        assert f"| {task} |" in md
    # one Table 2 row and three Table S1 rows (one per encoder pair)
    assert md.count("| pneumothorax segmentation | custom model | Dice |") == 4
    assert "| RAD-DINO | CheXagent | BiomedCLIP |" in md
    assert "## AUROC: bootstrap vs DeLong" in md and "| cardiomegaly classification | linear probe | RAD-DINO − CheXagent |" in md
    images = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert len(images) == 5                          # 4 analyses + one heads comparison
    for image in images:
        with Image.open(tmp_path / "rep" / image) as im:
            assert im.format == "PNG" and im.size[0] > 600
    assert "ns" in texts                              # the equally good pair is marked
    assert any(t.startswith("+") and t.endswith("%") for t in texts)   # relative improvement labels
    rows = list(csv.DictReader(open(tmp_path / "rep" / "pairwise.csv")))
    assert len(rows) == 4 * 2 * 3
    seg = [r for r in rows if r["model_a"] == "chexagent" and r["model_b"] == "biomedclip" and r["metric"] == "dice"]
    assert all(r["significant"] == "no" for r in seg)


def test_relative_improvement_follows_the_metric_direction():
    assert figures.relative_improvement(0.5, 0.6, higher_is_better=True) == pytest.approx(0.2)
    assert figures.relative_improvement(0.002, 0.001, higher_is_better=False) == pytest.approx(0.5)


def test_report_refuses_duplicates_and_foreign_files(run_dirs, tmp_path, capsys):
    from jaxprobe.errors import JaxprobeError

    with pytest.raises(JaxprobeError, match="both 'pneumothorax segmentation' / 'linear probe'"):
        report.build_report([run_dirs[0], run_dirs[0]], tmp_path / "rep")
    with pytest.raises(JaxprobeError, match="no results.json"):
        report.build_report([tmp_path], tmp_path / "rep")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(JaxprobeError, match="schema"):
        report.build_report([bad], tmp_path / "rep")
    (bad / "results.json").write_text("{truncated")
    for args in ([str(bad)], [str(tmp_path / "missing")]):
        assert report.main([*args, "--out", str(tmp_path / "rep")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err


def test_results_json_carries_every_setting(run_dirs):
    data = results.load_analysis(run_dirs[0])
    for key in ("n_resamples", "seed", "rng", "ci_level", "ci_method", "stratified", "empty_mask_rule",
                "mask_threshold", "pr_auc_definition", "point_estimate", "p_value", "alpha", "n_comparisons",
                "bonferroni_threshold"):
        assert key in data["settings"]
    assert data["settings"]["bonferroni_threshold"] == pytest.approx(0.05 / 3)
    cls = results.load_analysis(run_dirs[2])
    assert cls["settings"]["pr_auc_definition"] == ["average_precision"]
    assert set(cls["metrics"]["auroc"]["delong"]) == {"models", "pairs"}


def test_write_analysis_checks_the_kind(tmp_path):
    y = np.r_[np.ones(10, int), np.zeros(10, int)]
    comparisons = compare_metrics(["auroc"], y, {"a": np.arange(20.0)}, n_resamples=20)
    with pytest.raises(ValueError, match="classification metrics"):
        results.write_analysis(tmp_path, task="t", scenario="s", kind="regression", comparisons=comparisons)
    results.write_analysis(tmp_path, task="t", scenario="s", comparisons=comparisons)
    assert results.load_analysis(tmp_path)["kind"] == "classification"
