"""Config files and the command line: profiles resolved once (the embedded default's reductions, or the study's
sizes), overrides parsed by absl's config_flags with the key's type, clear errors for unknown keys and broken
files, --flagfile, and the ``jaxprobe`` console script."""
from pathlib import Path

import pytest

from jaxprobe import cli
from jaxprobe import config as config_lib
from jaxprobe.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ANALYSES = ["ptx_linear", "ptx_custom", "ptx_cls", "heart_linear", "heart_custom", "cmg_cls", "ctr_reg"]


def parse(*argv):
    return cli.parse_config(list(argv), prog="test")


@pytest.mark.parametrize("analysis", ANALYSES)
def test_every_analysis_loads_and_names_a_known_task(analysis):
    from jaxprobe import tasks

    config = parse("--config", str(CONFIGS / f"{analysis}.py")).config
    task = tasks.get(config.task)
    task.check_head(config.head.name)
    assert set(config.stats.metrics) <= set(task.metrics) | {"average_precision", "pr_auc_trapezoid"}


def test_the_embedded_default_resolves_to_the_demo_values():
    config = parse("--config", str(CONFIGS / "ptx_custom.py")).config
    assert config.profile == "demo"
    assert config.train.max_epochs == config.demo.train.max_epochs == 80  # custom head; linear heads: 200
    assert config.head.custom.to_dict() == config.demo.head.custom.to_dict()


def test_full_profile_and_real_inputs_keep_the_study_sizes():
    full = parse("--config", f"{CONFIGS / 'ptx_custom.py'}:full").config
    assert full.profile == "full" and full.train.max_epochs == 500 and tuple(full.head.custom.widths) == (512, 256)
    given = ["--config.data.root=/data/siim"] + [f"--config.encoders.{n}.checkpoint=/ckpt/{n}"
                                                  for n in ("rad_dino", "chexagent", "biomedclip")]
    auto = parse("--config", str(CONFIGS / "ptx_custom.py"), *given).config
    assert auto.profile == "full" and auto.head.custom.refine_size == 64


def test_a_key_set_on_the_command_line_is_not_replaced_by_the_demo():
    parsed = parse("--config", str(CONFIGS / "ptx_custom.py"), "--config.train.max_epochs=40",
                   "--config.head.custom.refine_size=48")
    c = parsed.config
    assert c.profile == "demo" and c.train.max_epochs == 40 and c.head.custom.refine_size == 48
    assert c.head.custom.widths == c.demo.head.custom.widths  # the keys not given still follow the demo
    assert set(parsed.overridden) == {"train.max_epochs", "head.custom.refine_size"}


def test_overrides_are_typed_and_lists_split_on_commas():
    c = parse("--config", str(CONFIGS / "ptx_cls.py"), "--config.train.seeds=0,1,2",
              "--config.encoders.names=rad_dino,biomedclip", "--config.stats.n_resamples=300",
              "--config.data.prepared=true", "--config.train.learning_rate=3e-4").config
    assert c.train.seeds == (0, 1, 2) and c.encoders.names == ("rad_dino", "biomedclip")
    assert c.stats.n_resamples == 300 and c.data.prepared is True and c.train.learning_rate == 3e-4


@pytest.mark.parametrize("args, message", [
    (["--config.train.lr=1"], "unknown key 'lr' in train; did you mean 'learning_rate'?"),
    (["--config.trian.seeds=1"], "unknown key 'trian' in the config; did you mean 'train'?"),
    (["--config.train.seeds.x=1"], "train.seeds is a value, not a group of keys"),
    (["--config.train.learning_rate=fast"], "could not convert string to float"),
    (["--workdr=x"], "Did you mean: workdir"),
])
def test_command_line_mistakes_are_named(args, message):
    import re

    from jaxprobe.run import _define_flags, main

    with pytest.raises(ConfigError, match=re.escape(message)):
        cli.parse_config(["--config", str(CONFIGS / "ptx_cls.py"), *args], prog="test", define=_define_flags)
    assert main(["--config", str(CONFIGS / "ptx_cls.py"), *args]) == 2


def test_broken_config_files_are_reported_without_a_traceback(tmp_path, capsys):
    from jaxprobe.run import main

    bad = tmp_path / "bad.py"
    bad.write_text("def get_config():\n    return 1 / 0\n")
    assert main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cannot load config" in err and "ZeroDivisionError" in err and "Traceback" not in err
    assert main(["--config", str(tmp_path / "missing.py")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["--config", f"{CONFIGS / 'ptx_cls.py'}:fast"]) == 2
    assert "expected one of ['auto', 'demo', 'full']" in capsys.readouterr().err
    assert main(["--config", str(CONFIGS / "ptx_cls.py"), "stray"]) == 2
    assert "unexpected arguments ['stray']" in capsys.readouterr().err


def test_flagfile(tmp_path):
    flagfile = tmp_path / "flags.txt"
    flagfile.write_text(f"--config={CONFIGS / 'ctr_reg.py'}\n--config.train.seeds=4,5\n")
    assert parse(f"--flagfile={flagfile}").config.train.seeds == (4, 5)


def test_paper_each_is_typed_and_applied_to_every_analysis():
    parsed = cli.parse_config(["--config", str(CONFIGS / "paper.py"), "--each.train.seeds=1,2",
                               "--config.analyses=ptx_cls,ctr_reg"], prog="test",
                              aliases={"--each.": "--config.each."})
    assert parsed.config.analyses == ("ptx_cls", "ctr_reg")
    each = {k[len("each."):]: v for k, v in config_lib.flat_values(parsed.config, parsed.overridden).items()
            if k.startswith("each.")}
    assert each == {"train.seeds": (1, 2)}
    from jaxprobe.run import analysis_of_paper

    c = analysis_of_paper(parsed.config, "ctr_reg", CONFIGS, each)
    assert c.train.seeds == (1, 2) and c.analysis == "ctr_reg" and c.profile == "demo"


def test_console_script_dispatches_to_the_module_commands(capsys):
    assert cli.main(["--help"]) == 0
    assert "jaxprobe COMMAND" in capsys.readouterr().out
    assert cli.main(["rnu"]) == 2
    assert "did you mean 'run'?" in capsys.readouterr().err
    assert cli.main(["run", "--config", str(CONFIGS / "ptx_cls.py"), "--config.train.lr=1"]) == 2
    assert "did you mean 'learning_rate'?" in capsys.readouterr().err
    for name, (module, _, _) in cli.COMMANDS.items():
        assert callable(__import__(module, fromlist=["main"]).main), name


def test_library_load_reads_the_argument_after_a_colon():
    assert config_lib.load(f"{CONFIGS / 'ptx_cls.py'}:full").profile == "full"
    with pytest.raises(ConfigError, match="no get_config"):
        config_lib.load(CONFIGS / "common.py")


@pytest.mark.parametrize("override, key", [
    ("--config.stats.metrics=auroc,dicey", "stats.metrics"),
    ("--config.stats.metrics=auroc", "stats.metrics"),  # a classification metric on a segmentation task
    ("--config.stats.ci_level=95", "stats.ci_level"),
    ("--config.stats.n_resamples=0", "stats.n_resamples"),
    ("--config.train.seeds=-1", "train.seeds"),
    ("--config.data.split_fractions=0.5,0.5,0.5", "data.split_fractions"),
    ("--config.data.on_error=ignore", "data.on_error"),
    ("--config.encoders.names=rad_dino,rad_dino", "encoders.names"),
    ("--config.encoders.names=rad_dino,dino", "encoders.names"),
    ("--config.head.name=linear", "head.name"),
    ("--config.embed.dtype=float16", "embed.dtype"),
])
def test_the_whole_config_is_checked_before_any_work(tmp_path, capsys, override, key):
    from jaxprobe.run import main

    workdir = tmp_path / "w"
    assert main(["--config", str(CONFIGS / "ptx_custom.py"), "--workdir", str(workdir),
                 f"--config.cache_dir={tmp_path / 'cache'}", override]) == 2
    err = capsys.readouterr().err
    assert f"  {key}: " in err and "Traceback" not in err
    assert not (tmp_path / "cache").exists() and not (workdir / "split.csv").exists()  # nothing was done


def test_the_default_cache_follows_xdg_cache_home_for_stores_and_kernels(tmp_path, monkeypatch):
    from jaxprobe.encoders import cpu_kernels

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    config = parse("--config", str(CONFIGS / "ptx_custom.py")).config
    assert config_lib.cache_dir(config) == tmp_path / "xdg" / "jaxprobe"
    assert cpu_kernels.cache_root() == tmp_path / "xdg" / "jaxprobe" / "kernels"
    home = Path("~").expanduser() / ".cache" / "jaxprobe"
    for ignored in ("", "relative/cache"):  # the XDG spec: an empty or relative value is not used
        monkeypatch.setenv("XDG_CACHE_HOME", ignored)
        assert config_lib.cache_dir(parse("--config", str(CONFIGS / "ptx_cls.py")).config) == home
        assert cpu_kernels.cache_root() == home / "kernels"
