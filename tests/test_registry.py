"""A fourth encoder and a new analysis, added without touching run, inputs, results or report: one registry entry
(of an existing family) and one config file are enough for loading, conversion, the run, tables and figures."""
import json
from pathlib import Path

import pytest

from jaxprobe.encoders import registry
from jaxprobe.encoders.config import ViTConfig
from jaxprobe.encoders.spec import EncoderSpec

ROOT = Path(__file__).resolve().parents[1]

SMALL_DINO = registry.EncoderEntry(
    "rad_dino_small", "RAD-DINO (small)", "dinov2",
    ViTConfig("dinov2", 224, 14, 96, 2, 2, 384, 1e-6, gelu_approximate=False, layerscale=True, class_token=True,
              pool="cls", pos_interp="torch_bicubic"),
    EncoderSpec("dinov2", 224, 14, (0.5,) * 3, (0.25,) * 3, "shortest_edge_center_crop", 96, 96),
    weights="example/rad-dino-small")


@pytest.fixture
def small_dino():
    registry.register(SMALL_DINO)
    yield SMALL_DINO
    registry.unregister(SMALL_DINO.name)


def test_an_entry_is_all_a_new_encoder_of_a_known_family_needs(small_dino, tmp_path):
    from jaxprobe import encoders
    from jaxprobe.encoders.conversion.cli import main as convert_main
    from reference_models import make_dinov2

    encoder = encoders.load("rad_dino_small")
    assert encoder.spec.input_size == 224 and encoder.config.width == 96 and encoder.config.family == "dinov2"
    assert registry.display_name("rad_dino_small") == "RAD-DINO (small)" and registry.display_name("other") == "other"
    src = make_dinov2(tmp_path / "src", full=False, seed=5)  # no preprocessor file: the entry's spec fills in
    assert convert_main(["rad_dino_small", "--src", str(src), "--out", str(tmp_path / "out"), "--n-images", "1"]) == 0
    meta = json.loads((tmp_path / "out" / "encoder.json").read_text())
    assert meta["provenance"]["name"] == "rad_dino_small" and meta["spec"]["mean"] == [0.5, 0.5, 0.5]
    assert json.loads((tmp_path / "out" / "parity.json").read_text())["passed"] is True
    with pytest.raises(Exception, match="already registered"):
        registry.register(SMALL_DINO)


def test_a_new_analysis_config_runs_a_fourth_encoder(small_dino, tmp_path):
    """The config file is new (not in configs/); it adds the entry to encoders.names and its block."""
    from jaxprobe.run import main
    from test_run import SMALL

    config = tmp_path / "ctr_four.py"
    config.write_text(f'''"""CTR regression with four encoders (a test's analysis)."""
from jaxprobe.config import module_beside

common = module_beside({str(ROOT / "configs" / "common.py")!r}, None)


def get_config(arg=None):
    c = common.base("ctr_four", source="cardiomegaly", task="regression", target="ctr", title="CTR regression",
                    head="linear", metrics=("r2", "mse"), arg=arg)
    c.encoders.names = c.encoders.names + ("rad_dino_small",)
    c.encoders.rad_dino_small = common.encoder_block()
    return c
''')
    rc = main(["--config", str(config), "--workdir", str(tmp_path / "w"), f"--config.cache_dir={tmp_path / 'c'}",
               *SMALL, "--config.encoders.rad_dino_small.input_size=56"])
    assert rc == 0
    results = json.loads((tmp_path / "w" / "results.json").read_text())
    assert results["models"] == ["rad_dino", "chexagent", "biomedclip", "rad_dino_small"]
    assert len(results["metrics"]["r2"]["pairs"]) == 6 and results["settings"]["n_comparisons"] == 6
    assert results["settings"]["bonferroni_threshold"] == pytest.approx(0.05 / 6)
    assert "| RAD-DINO (small) |" in (tmp_path / "w" / "table.md").read_text()
    assert results["display_names"]["rad_dino_small"] == "RAD-DINO (small)"
    figures = {p.name for p in (tmp_path / "w" / "report" / "figures").glob("*.png")}
    assert "ctr_regression_linear_probe.png" in figures and "ctr_regression_linear_probe_pairwise.png" in figures


DECLARED_CONFIG = '''"""Cardiomegaly classification with a config-declared encoder (a test's analysis)."""
from jaxprobe.config import module_beside

common = module_beside(COMMON, None)
cmg = module_beside(CMG, None)


def get_config(arg=None):
    c = cmg.get_config(arg)
    c.encoders.names = ("biomedclip", "my_dino")
    c.encoders.my_dino = common.encoder_block(family="dinov2", checkpoint=CHECKPOINT, display_name="My DINO")
    return c
'''


def test_an_encoder_declared_in_the_config_alone(tmp_path, capsys):
    """A name the registry does not know, declared by family + checkpoint + display name in the config; the
    checkpoint's architecture (not the random-init sizes) is what runs."""
    from jaxprobe.encoders.conversion import convert
    from jaxprobe.run import main
    from reference_models import make_dinov2
    from test_run import SMALL

    src = make_dinov2(tmp_path / "src", full=False, seed=3)
    convert("rad_dino", src, tmp_path / "mine", parity=False)
    config = tmp_path / "declared.py"
    config.write_text(DECLARED_CONFIG.replace("COMMON", repr(str(ROOT / "configs" / "common.py")))
                      .replace("CMG", repr(str(ROOT / "configs" / "cmg_cls.py")))
                      .replace("CHECKPOINT", repr(str(tmp_path / "mine"))))
    args = ["--config", str(config), "--workdir", str(tmp_path / "w"), f"--config.cache_dir={tmp_path / 'c'}",
            *SMALL]
    assert main(args) == 0
    results = json.loads((tmp_path / "w" / "results.json").read_text())
    assert results["models"] == ["biomedclip", "my_dino"] and results["display_names"]["my_dino"] == "My DINO"
    assert "| BiomedCLIP | My DINO |" in (tmp_path / "w" / "table.md").read_text()
    head = json.loads((tmp_path / "w" / "predictions" / "my_dino" / "head.json").read_text())
    assert head["encoder"]["source"] == str(tmp_path / "mine") and head["encoder"]["config"]["width"] != 32
    capsys.readouterr()
    assert main(args + ["--workdir", str(tmp_path / "w2"), "--config.encoders.my_dino.family=siglip"]) == 2
    err = capsys.readouterr().err
    assert "holds a dinov2 encoder, but my_dino is a siglip encoder" in err and "[train:" not in err
    assert main(args + ["--workdir", str(tmp_path / "w3"), "--config.encoders.my_dino.checkpoint="]) == 2
    assert "needs its weights" in capsys.readouterr().err
