"""Every command answers a user-caused failure with ``error: ...`` naming the file or key, and exit status 2 —
never a traceback. Each case is one the hardening issue found (bad data, damaged JSON, missing folders)."""
import json
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _siim_with_bad_labels(tmp_path):
    root = tmp_path / "siim"
    (root / "dicom-images-train").mkdir(parents=True)
    (root / "train-rle.csv").write_text("ImageId,Pixels\n1.2.3,-1\n")  # no EncodedPixels column
    return root


def _cases(tmp_path):
    from convert.__main__ import main as convert_main
    from jaxprobe.data.prepare import main as prepare_main
    from jaxprobe.data.synth import main as synth_main
    from jaxprobe.embed.__main__ import main as embed_main
    from jaxprobe.report import main as report_main
    from jaxprobe.run import main as run_main
    from jaxprobe.stats.__main__ import main as stats_main

    cache = f"--config.cache_dir={tmp_path / 'cache'}"
    siim = _siim_with_bad_labels(tmp_path)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "timings.json").write_text("{not json")
    (damaged / "results.json").write_text("{not json")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "encoder.json").write_text("{\"family\": ")
    pred = tmp_path / "a.csv"
    pred.write_text("case_id,score\nx,0.5\n")
    return {
        "run: a label CSV without its column": (
            run_main, ["--config", str(CONFIGS / "ptx_cls.py"), cache, f"--config.data.root={siim}",
                       "--workdir", str(tmp_path / "w1")], "train-rle.csv"),
        "run: a damaged timings.json": (
            run_main, ["--config", str(CONFIGS / "ctr_reg.py"), cache, "--config.data.synthetic.n=24",
                       "--workdir", str(damaged)], "timings.json"),
        "embed: a label CSV without its column": (
            embed_main, ["--config", str(CONFIGS / "ptx_cls.py"), cache, f"--config.data.root={siim}"],
            "train-rle.csv"),
        "convert verify: a damaged encoder.json": (
            convert_main, ["verify", "--ckpt", str(ckpt), "--src", str(tmp_path)], "encoder.json"),
        "convert: a source folder that does not exist": (
            convert_main, ["rad_dino", "--src", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")], "nothing"),
        "report: damaged results.json": (report_main, [str(damaged), "--out", str(tmp_path / "r")], "results.json"),
        "report: no results.json": (report_main, [str(tmp_path / "w1"), "--out", str(tmp_path / "r")], "results.json"),
        "stats: a prediction file without y_true": (
            stats_main, ["--metric", "auroc", "--task", "t", "--pred", f"a={pred}", "--pred", f"b={pred}", "--out",
                         str(tmp_path / "s")], "a.csv"),
        "prepare: a manual folder that does not exist": (
            prepare_main, ["--dataset", "siim_acr_pneumothorax", "--manual-dir", str(tmp_path / "none"),
                           "--data-dir", str(tmp_path / "tfds")], "none"),
        "synth: too few phantoms": (synth_main, ["--out", str(tmp_path / "ph"), "--n", "1"], "n must be at least 2"),
    }


CASES = ["run: a label CSV without its column", "run: a damaged timings.json", "embed: a label CSV without its column",
         "convert verify: a damaged encoder.json", "convert: a source folder that does not exist",
         "report: damaged results.json", "report: no results.json", "stats: a prediction file without y_true",
         "prepare: a manual folder that does not exist", "synth: too few phantoms"]


@pytest.mark.parametrize("case", CASES)
def test_user_errors_are_one_line_and_exit_2(case, tmp_path, capsys):
    main, argv, named = _cases(tmp_path)[case]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert lines and named in lines[-1], err
    json.dumps(err)  # printable
