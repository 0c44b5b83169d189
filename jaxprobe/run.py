"""``python -m jaxprobe.run --config configs/<analysis>.py [--workdir DIR] [--config.KEY=VALUE ...]``
``python -m jaxprobe.run --config configs/paper.py [--config.KEY=VALUE ...] [--each.KEY=VALUE ...]``

One analysis of the study end to end: images (original files or a prepared dataset) + patient-level split -> per-encoder embedding store -> head
training (early stopping, best-validation weights) -> test predictions -> paired bootstrap statistics ->
results.json / table.md / pairwise.csv / figures / overlays. ``configs/paper.py`` runs all seven analyses and
writes one combined report. Every stage's output is on disk; a re-run reuses the stores, the trained heads and
the predictions, and recomputes only what is missing.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from ml_collections import ConfigDict

from .config import ConfigError, apply_overrides, load_config_file
from .inputs import SEG_TARGETS, RunError, is_demo, is_random, load_inputs, mask_of, store_for

log = logging.getLogger("jaxprobe.run")

LOSS_OF_HEAD = {"linear_seg": "bce", "custom_seg": "bce"}


# ---------------------------------------------------------------------------------------------------- logging
@contextlib.contextmanager
def run_logging(workdir: Path):
    """jaxprobe's messages to stdout and ``workdir/run.log`` for the duration of a run, then as they were."""
    logger = logging.getLogger("jaxprobe")
    saved = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # libraries may configure the root logger too; print each line once
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    handlers = [logging.StreamHandler(sys.stdout), logging.FileHandler(workdir / "run.log")]
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            logger.removeHandler(h)
            h.close()
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


class Timings:
    def __init__(self, path: Path):
        self.path = path
        self.values = json.loads(path.read_text()) if path.exists() else {}

    @contextlib.contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        log.info(f"[{name}] start")
        yield
        dt = time.perf_counter() - t0
        self.values[name] = round(dt, 2)
        self.path.write_text(json.dumps(self.values, indent=2) + "\n")
        log.info(f"[{name}] done in {dt:.1f}s")


# ---------------------------------------------------------------------------------------------------- training
def probe_data(config: ConfigDict, store):
    from .train import ProbeData

    targets = store.targets()
    if config.target in SEG_TARGETS:
        y = store.mask_rows()
    elif config.target == "label":
        y = targets["label"].astype(np.float32)
    else:
        y = targets["ctr"].astype(np.float32)
    features = {"global": store.global_embeddings, "patches": store.patches}
    return ProbeData(features=features, targets=y, case_ids=store.ids)


def train_config(config: ConfigDict):
    from .train import TrainConfig

    t = config.train
    max_epochs = min(t.max_epochs, t.demo_max_epochs) if is_demo(config) else t.max_epochs
    return TrainConfig(learning_rate=t.learning_rate, weight_decay=t.weight_decay, batch_size=t.batch_size,
                       eval_batch_size=t.eval_batch_size, patience=t.patience, min_delta=t.min_delta,
                       max_epochs=max_epochs, seeds=tuple(t.seeds), shuffle_seed=t.shuffle_seed,
                       data_on_device=t.data_on_device)


def head_factory(config: ConfigDict, name: str, spec):
    from .heads import make_head

    sizes = {}
    if config.head.name == "custom_seg":
        c = config.head.custom_demo if is_random(config, name) else config.head.custom
        sizes = {"widths": tuple(c.widths), "refine_size": c.refine_size, "num_heads": c.num_heads,
                 "attention_dim": c.attention_dim}
    return lambda rngs: make_head(config.head.name, spec, rngs=rngs, **sizes), sizes


def check_same_setup(path: Path, setup: dict) -> None:
    """Finished predictions are reused only for the same head, training settings, encoder and store."""
    previous = json.loads(path.read_text()) if path.exists() else {}
    differ = sorted(k for k in setup.keys() | previous.keys() if setup.get(k) != previous.get(k))
    if differ:
        raise RunError(f"{path.parent} holds predictions of a different set-up (differs in {differ}); use another "
                       f"--workdir, or remove {path.parents[1]} and {path.parents[2] / 'train'} to retrain")


def loss_of(config: ConfigDict) -> str:
    return "mse" if config.target == "ctr" else "bce"


# ---------------------------------------------------------------------------------------------------- statistics
def collect_predictions(config: ConfigDict, workdir: Path):
    """Member 0 of each encoder's head (the paired comparison); the members' spread is in summary.json."""
    from . import predictions
    from .errors import PredictionFileError

    segmentation = config.target in SEG_TARGETS
    kind = "mask" if segmentation else ("ranking" if config.target == "label" else "regression")
    try:
        # each encoder's masks live on its own input grid, so its true areas are its own
        loaded = predictions.load_run(workdir, config.encoders.names, kind, shared_truth=not segmentation)
    except PredictionFileError as e:
        raise RunError(f"predictions in {workdir / 'predictions'} do not match across encoders: {e}") from None
    return loaded.predictions, loaded.y_true, loaded.case_ids


def statistics(config: ConfigDict, workdir: Path):
    from . import results
    from .stats import compare_metrics

    preds, y_true, case_ids = collect_predictions(config, workdir)
    s = config.stats
    kind_ranking = config.target == "label"
    comparisons = compare_metrics(
        list(s.metrics), y_true, preds, n_resamples=s.n_resamples, seed=s.seed, ci_level=s.ci_level,
        stratify=s.stratified if kind_ranking else None, empty_mask_rule=s.empty_mask_rule,
        mask_threshold=s.mask_threshold, pr_auc=s.pr_auc, point_estimate=s.point_estimate, alpha=s.alpha,
        # each encoder's masks live on its own input grid (518 crop, 512 resize, 224 crop): Dice/IoU per case,
        # paired by case, against the ground truth on that grid — as the authors' per-model dataloaders do
        shared_truth=config.target not in SEG_TARGETS)
    return results.write_analysis(workdir, task=config.task, scenario=config.scenario, comparisons=comparisons,
                                  cases={"n": len(case_ids), "source": "predictions/<encoder>/member0"})


# ---------------------------------------------------------------------------------------------------- the run
def banner(config: ConfigDict) -> str:
    lines = []
    if not (config.data.root or config.data.nih_root or config.data.manifest):
        s = config.data.synthetic
        lines.append(f"data: SYNTHETIC phantom set ({s.n} images, {s.size}x{s.size}, seed {s.seed}), not radiographs")
    random = [n for n in config.encoders.names if is_random(config, n)]
    if random:
        r = config.encoders.random
        lines.append(f"encoders {', '.join(random)}: RANDOMLY INITIALISED, reduced to depth {r.depth} and width "
                     f"{r.width} (real patch and input sizes)")
        if config.head.name == "custom_seg":
            c = config.head.custom_demo
            lines.append(f"custom head shrunk for the CPU: convs {tuple(c.widths)} at {c.refine_size}x{c.refine_size}, "
                         f"{c.num_heads} heads, attention width {c.attention_dim}")
    if not lines:
        return ""
    lines.append(f"training capped at {config.train.demo_max_epochs} epochs. These numbers say nothing about the models.")
    lines += ["For real data and weights, e.g.:",
              "  --config.data.root=/data/siim        (SIIM-ACR: dicom-images-train/ + train-rle.csv)",
              "  --config.data.nih_root=/data/nih --config.data.chexmask_csv=/data/chexmask/ChestX-Ray8.csv.gz",
              "  --config.encoders.rad_dino.checkpoint=/ckpts/rad-dino   (original or converted folder; likewise",
              "    chexagent and biomedclip)"]
    width = max(len(x) for x in lines) + 4
    bar = "=" * width
    return "\n".join([bar, "  jaxprobe EMBEDDED DEFAULT", *("  " + x for x in lines), bar])


def run_analysis(config: ConfigDict, workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    with run_logging(workdir):
        return _run_analysis(config, workdir)


def _run_analysis(config: ConfigDict, workdir: Path) -> Path:
    from . import predictions
    from .train import fit, predict

    text = banner(config)
    if text:
        for line in text.splitlines():
            log.info(line)
    effective = {"demo": is_demo(config), "train": train_config(config).to_dict()}
    (workdir / "config.json").write_text(json.dumps({"config": config.to_dict(), "effective": effective},
                                                    indent=2, default=list) + "\n")
    timings = Timings(workdir / "timings.json")
    with timings.stage("inputs"):
        inputs = load_inputs(config, workdir)
    mask = mask_of(config)
    tcfg = train_config(config)
    for name in config.encoders.names:
        with timings.stage(f"embed:{name}"):
            encoder, store = store_for(config, name, inputs)
        make_head, sizes = head_factory(config, name, encoder.spec)
        setup = json.loads(json.dumps({"head": config.head.name, "sizes": sizes, "loss": loss_of(config),
                                       "train": tcfg.to_dict(), "encoder": encoder.identity(),
                                       "store": str(store.path)}, default=str))
        if predictions.summary_file(workdir, name).exists():
            check_same_setup(predictions.head_file(workdir, name), setup)
            log.info(f"{name}: predictions exist, skipping training")
            continue
        with timings.stage(f"train:{name}"):
            data = probe_data(config, store)
            rows = {s: inputs.rows(s) for s in ("train", "val", "test")}
            result = fit(make_head, data, rows["train"], rows["val"], tcfg, loss=loss_of(config),
                         name=f"{config.analysis}/{name}/{config.head.name}", workdir=workdir / "train" / name)
        with timings.stage(f"predict:{name}"):
            with (predictions.MaskFiles(workdir, name, len(rows["test"])) if mask is not None
                  else contextlib.nullcontext()) as mask_sink:
                test = predict(result, data, rows["test"], mask_sink=mask_sink)
            predictions.write(workdir, name, result, test)
            predictions.write_head(workdir, name, setup)
    with timings.stage("statistics"):
        statistics(config, workdir)
    with timings.stage("report"):
        from .report import build_report

        build_report([str(workdir)], workdir / "report")
        if mask is not None and config.report.overlays:
            from .overlays import write_overlays

            write_overlays(config, inputs, workdir, n=config.report.overlays)
    log.info(f"results: {workdir / 'results.json'}, {workdir / 'table.md'}, {workdir / 'report' / 'report.md'}")
    return workdir


def run_paper(paper: ConfigDict, config_dir: Path, workdir: Path, each: Sequence[str] = ()) -> Path:
    """All analyses in ``paper.analyses``; ``each`` holds ``--config.KEY=VALUE`` overrides for every one of them."""
    from .report import build_report

    dirs = []
    for analysis in paper.analyses:
        c = apply_overrides(load_config_file(config_dir / f"{analysis}.py"), each)
        c.data.root = paper.siim_root if c.data.source == "siim" else ""
        c.data.csv = paper.siim_csv if c.data.source == "siim" else ""
        if c.data.source == "cardiomegaly":
            c.data.nih_root, c.data.manifest, c.data.chexmask_csv = paper.nih_root, paper.manifest, paper.chexmask_csv
        for name in c.encoders.names:
            c.encoders[name].checkpoint = paper.checkpoints[name]
        c.stats.n_resamples = paper.n_resamples
        c.train.seeds = tuple(paper.train_seeds)
        if paper.cache_dir:
            c.cache_dir = paper.cache_dir
        dirs.append(str(run_analysis(c, workdir / analysis)))
    with run_logging(workdir):
        out = build_report(dirs, workdir / "report")
        log.info(f"combined report: {out}")
    return workdir


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    config_path, workdir, overrides, each = None, None, [], []
    it = iter(argv)
    for a in it:
        if a in ("-h", "--help"):
            print(__doc__)
            return 0
        if a == "--config" or a.startswith("--config="):
            config_path = a.split("=", 1)[1] if "=" in a else next(it, None)
        elif a == "--workdir" or a.startswith("--workdir="):
            workdir = a.split("=", 1)[1] if "=" in a else next(it, None)
        elif a.startswith("--config."):
            overrides.append(a)
        elif a.startswith("--each."):  # paper.py: an override for every analysis
            each.append("--config." + a[len("--each."):])
        else:
            print(f"error: unknown argument {a!r}\n{__doc__}", file=sys.stderr)
            return 2
    if not config_path:
        print(f"error: --config is required\n{__doc__}", file=sys.stderr)
        return 2
    try:
        config = apply_overrides(load_config_file(config_path), overrides)
        wd = Path(workdir or config.workdir).absolute()
        wd.mkdir(parents=True, exist_ok=True)
        if config.analysis == "paper":
            run_paper(config, Path(config_path).parent, wd, each)
        elif each:
            raise ConfigError("--each.KEY=VALUE applies to configs/paper.py only; use --config.KEY=VALUE")
        else:
            run_analysis(config, wd)
    except (ConfigError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
