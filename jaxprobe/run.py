"""``python -m jaxprobe.run --config configs/<analysis>.py[:demo|:full] [--workdir DIR] [--config.KEY=VALUE ...]``
``python -m jaxprobe.run --config configs/paper.py [--config.KEY=VALUE ...] [--each.KEY=VALUE ...]``

One analysis of the study end to end: images (original files or a prepared dataset) + patient-level split ->
per-encoder embedding store -> head training (early stopping, best-validation weights) -> test predictions ->
bootstrap statistics -> results.json / table.md / pairwise.csv / figures / overlays. ``configs/paper.py`` runs all seven analyses and
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

from . import cli, hostmem, tasks
from . import config as config_lib
from .errors import ConfigError, RunError, read_json
from .embed.analysis import display_name, store_for
from .encoders import cpu_kernels
from .inputs import check_target, load_inputs
from .validate import validate
from .tasks import Task

log = logging.getLogger("jaxprobe.run")


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
        self.values = read_json(path, RunError, "delete it") if path.exists() else {}

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
def probe_data(config: ConfigDict, task: Task, store):
    from .train import ProbeData

    features = {name: store.array(name) for name in store.features}
    return ProbeData(features=features, targets=task.probe_targets(store, config.target), case_ids=store.ids)


def train_config(config: ConfigDict):
    """Every key of ``config.train`` is a TrainConfig field (an unknown one is an error, none is dropped)."""
    from .train import TrainConfig

    try:
        return TrainConfig.from_dict(config.train.to_dict())
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.train: {e}") from None


@contextlib.contextmanager
def tensorboard_writer(config: ConfigDict, train_dir: Path, tcfg):
    """``on_epoch_end`` for ``fit`` writing each member's losses as TensorBoard scalars (``log.tensorboard``),
    or None."""
    if not config.log.tensorboard:
        yield None
        return
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ConfigError("log.tensorboard=true needs tensorboardX: pip install 'jaxprobe[tensorboard]'") from None
    members = tcfg.members()
    writer = SummaryWriter(logdir=str(train_dir / "tensorboard"))

    def on_epoch_end(epoch: int, record: dict) -> None:
        for k, (seed, lr) in enumerate(members):
            tag = f"member{k}_seed{seed}_lr{lr:g}"
            writer.add_scalars(f"loss/{tag}", {"train": record["train_loss"][k], "validation": record["val_loss"][k]},
                               epoch)
        writer.flush()

    try:
        yield on_epoch_end
    finally:
        writer.close()


def head_factory(config: ConfigDict, spec):
    from .heads import make_head

    block = {"custom_seg": "custom", "linear_seg": "linear_seg"}.get(config.head.name)
    options = {k: tuple(v) if isinstance(v, (list, tuple)) else v
               for k, v in (config.head[block].to_dict() if block else {}).items()}
    return lambda rngs: make_head(config.head.name, spec, rngs=rngs, **options), options


def cases_digest(inputs) -> str:
    """A fingerprint of what decides the numbers besides the head: every case id, its split and its targets."""
    import hashlib

    h = hashlib.sha256()
    for case_id, split_name in zip(inputs.ids, inputs.splits):
        h.update(f"{case_id}\t{split_name}\n".encode())
    for key in sorted(inputs.targets):
        h.update(key.encode() + b"=" + np.ascontiguousarray(inputs.targets[key]).tobytes())
    return h.hexdigest()


def check_same_setup(path: Path, setup: dict) -> None:
    """Finished predictions are reused only for the same head, training settings, encoder and store."""
    previous = read_json(path, RunError, f"remove {path.parent} to predict again") if path.exists() else {}
    differ = sorted(k for k in setup.keys() | previous.keys() if setup.get(k) != previous.get(k))
    if differ:
        raise RunError(f"{path.parent} holds predictions of a different set-up (differs in {differ}); use another "
                       f"--workdir, or remove {path.parents[1]} and {path.parents[2] / 'train'} to retrain")


# ---------------------------------------------------------------------------------------------------- statistics
def collect_predictions(config: ConfigDict, task: Task, workdir: Path):
    """Member 0 of each encoder's head (the paired comparison); the members' spread is in summary.json."""
    from . import predictions
    from .errors import PredictionFileError

    try:
        # each encoder's masks live on its own input grid, so its true areas are its own (task.shared_truth)
        loaded = predictions.load_run(workdir, config.encoders.names, task.metric_kind,
                                      shared_truth=task.shared_truth)
    except PredictionFileError as e:
        raise RunError(f"predictions in {workdir / 'predictions'} do not match across encoders: {e}") from None
    return loaded.predictions, loaded.y_true, loaded.case_ids


def statistics(config: ConfigDict, task: Task, workdir: Path, baselines: dict | None = None,
               encoders: dict | None = None):
    from . import results
    from .heads import SCENARIOS
    from .stats import compare_metrics

    preds, y_true, case_ids = collect_predictions(config, task, workdir)
    s = config.stats
    comparisons = compare_metrics(
        list(s.metrics), y_true, preds, n_resamples=s.n_resamples, seed=s.seed, ci_level=s.ci_level,
        stratify=s.stratified if task.stratifiable else None, empty_mask_rule=s.empty_mask_rule,
        mask_threshold=s.mask_threshold, pr_auc=s.pr_auc, point_estimate=s.point_estimate, alpha=s.alpha,
        shared_truth=task.shared_truth, test=s.test)
    extra = {"seeds": seed_spread(config, task, workdir), "encoders": encoders}
    if task.metric_kind == "ranking":
        extra["operating_points"] = operating_points(config, workdir, preds, y_true)
    return results.write_analysis(workdir, task=config.title, scenario=SCENARIOS[config.head.name], extra=extra,
                                  kind=task.result_kind, comparisons=comparisons,
                                  display_names={n: display_name(config, n) for n in config.encoders.names},
                                  cases={"n": len(case_ids), "source": "predictions/<encoder>/member0"},
                                  baselines=baselines)


def operating_points(config: ConfigDict, workdir: Path, preds, y_true) -> dict:
    """Each encoder's threshold chosen on its validation scores, then the test set's statistics at it."""
    from . import predictions
    from .stats.operating import choose_threshold
    from .stats.operating import operating_points as at_thresholds

    s, op = config.stats, config.stats.operating_point
    thresholds = {}
    for name in preds:
        y_val, score_val = predictions.load_validation(workdir, name)
        try:
            thresholds[name] = choose_threshold(y_val, score_val, op.rule, op.sensitivity)
        except ValueError as e:  # e.g. a validation set of one class: the rest of the analysis stands
            log.warning(f"operating points skipped: {name}: {e}")
            return {"skipped": f"{name}: {e}", "rule": op.rule}
    return at_thresholds(y_true, preds, thresholds, n_resamples=s.n_resamples, seed=s.seed, ci_level=s.ci_level,
                         stratified=bool(s.stratified), test=s.test, alpha=s.alpha, rule=op.rule,
                         target_sensitivity=op.sensitivity)


def seed_spread(config: ConfigDict, task: Task, workdir: Path) -> dict | None:
    """With K > 1 training seeds: each test metric of every member on the full test set, and their mean and sd
    across members. The paired statistics use member 0 (the first seed); this is the spread beside them."""
    from . import metrics, predictions

    members = len(train_config(config).members())
    if members < 2:
        return None
    out = {"members": members, "statistics_use": "member 0", "metrics": {}}
    for k in range(members):
        loaded = predictions.load_run(workdir, config.encoders.names, task.metric_kind, member=k,
                                      shared_truth=task.shared_truth)
        for name in config.stats.metrics:
            info = metrics.resolve_metric(name, config.stats.pr_auc)
            for model, prediction in loaded.predictions.items():
                try:
                    value = metrics.point_estimate(info.name, loaded.y_true, prediction,
                                                   empty_mask_rule=config.stats.empty_mask_rule)
                except ValueError:
                    value = float("nan")
                out["metrics"].setdefault(info.name, {}).setdefault(model, {"values": []})["values"].append(value)
    for per_model in out["metrics"].values():
        for entry in per_model.values():
            v = np.asarray(entry["values"], np.float64)
            entry["mean"], entry["sd"] = float(np.nanmean(v)), float(np.nanstd(v, ddof=1))
    return out


# ---------------------------------------------------------------------------------------------------- the run
def banner(config: ConfigDict) -> str:
    """What the embedded default (profile "demo") changes, read from the resolved config; "" for a full run."""
    if config.profile != "demo":
        return ""
    lines = []
    if not config_lib.data_given(config):
        s = config.data.synthetic
        lines.append(f"data: SYNTHETIC phantom set ({s.n} images, {s.size}x{s.size}, seed {s.seed}), not radiographs")
    random = config_lib.random_encoders(config)
    if random:
        r = config.encoders.random
        lines.append(f"encoders {', '.join(random)}: RANDOMLY INITIALISED, reduced to depth {r.depth} and width "
                     f"{r.width} (real patch and input sizes)")
    if config.head.name == "custom_seg":
        c = config.head.custom
        lines.append(f"custom head shrunk for the CPU: convs {tuple(c.widths)} at {c.refine_size}x{c.refine_size}, "
                     f"{c.num_heads} heads, attention width {c.attention_dim}")
    lines.append(f"training capped at {config.train.max_epochs} epochs. These numbers say nothing about the models.")
    lines += ["For real data and weights, e.g.:",
              "  --config.data.root=/data/siim        (SIIM-ACR: dicom-images-train/ + train-rle.csv)",
              "  --config.data.nih_root=/data/nih --config.data.chexmask_csv=/data/chexmask/ChestX-Ray8.csv.gz",
              "  --config.encoders.rad_dino.checkpoint=/ckpts/rad-dino   (original or converted folder; likewise",
              "    chexagent and biomedclip)"]
    width = max(len(x) for x in lines) + 4
    bar = "=" * width
    return "\n".join([bar, "  jaxprobe EMBEDDED DEFAULT (profile demo; all values in config.json)",
                      *("  " + x for x in lines), bar])


def run_analysis(config: ConfigDict, workdir: Path) -> Path:
    """One analysis end to end; ``config`` is resolved (``jaxprobe.config.resolve``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with run_logging(workdir):
        return _run_analysis(config, workdir)


def _run_analysis(config: ConfigDict, workdir: Path) -> Path:
    from . import baselines, predictions
    from .heads import FEATURES
    from .train import fit, predict

    validate(config)
    task = tasks.get(config.task)
    check_target(config, task)
    tcfg = train_config(config)
    for line in banner(config).splitlines():
        log.info(line)
    log.info(hostmem.describe())
    log.info(cpu_kernels.describe())
    (workdir / "config.json").write_text(json.dumps(config.to_dict(), indent=2, default=list) + "\n")
    timings = Timings(workdir / "timings.json")
    with timings.stage("inputs"):
        inputs = load_inputs(config, task, workdir)
    segmentation = task.target_kind == "mask"
    cases = cases_digest(inputs)
    trivial, provenance = {}, {}
    for name in config.encoders.names:
        with timings.stage(f"embed:{name}"):
            encoder, store = store_for(config, task, name, inputs, FEATURES[config.head.name])
        provenance[name] = {**encoder.provenance(), "embedded_with": store.meta.get("versions", {})}
        trivial[name] = baselines.for_encoder(task, store, config.target, inputs.rows("train"), inputs.rows("test"),
                                              list(config.stats.metrics), pr_auc=config.stats.pr_auc,
                                              empty_mask_rule=config.stats.empty_mask_rule)
        make_head, sizes = head_factory(config, encoder.spec)
        setup = json.loads(json.dumps({"head": config.head.name, "sizes": sizes, "loss": task.loss,
                                       "train": tcfg.identity(), "encoder": encoder.identity(),
                                       "store": str(store.path), "masks": store.mask_part, "cases": cases}, default=str))
        if predictions.summary_file(workdir, name).exists():
            check_same_setup(predictions.head_file(workdir, name), setup)
            log.info(f"{name}: predictions exist, skipping training")
            continue
        predictions.write_head(workdir, name, setup)  # the identity first: a kill after it loses nothing
        with timings.stage(f"train:{name}"):
            data = probe_data(config, task, store)
            rows = {s: inputs.rows(s) for s in ("train", "val", "test")}
            with tensorboard_writer(config, workdir / "train" / name, tcfg) as on_epoch_end:
                result = fit(make_head, data, rows["train"], rows["val"], tcfg, loss=task.loss,
                             name=f"{config.analysis}/{name}/{config.head.name}", workdir=workdir / "train" / name,
                             on_epoch_end=on_epoch_end)
        with timings.stage(f"predict:{name}"):
            with (predictions.MaskFiles(workdir, name, len(rows["test"])) if segmentation
                  else contextlib.nullcontext()) as mask_sink:
                test = predict(result, data, rows["test"], mask_threshold=config.stats.mask_threshold,
                               mask_sink=mask_sink)
            if task.metric_kind == "ranking":  # the operating point's threshold is chosen on these
                predictions.write_validation(workdir, name, predict(result, data, rows["val"]))
            predictions.write(workdir, name, result, test, empty_mask_rule=config.stats.empty_mask_rule)
    with timings.stage("statistics"):
        statistics(config, task, workdir, baselines.gather(trivial), provenance)
    with timings.stage("report"):
        from .report import build_report

        build_report([str(workdir)], workdir / "report")
        if segmentation and config.report.overlays:
            from .overlays import write_overlays

            write_overlays(config, inputs, workdir, n=config.report.overlays)
    log.info(f"results: {workdir / 'results.json'}, {workdir / 'table.md'}, {workdir / 'report' / 'report.md'}")
    return workdir


def analysis_of_paper(paper: ConfigDict, analysis: str, config_dir: Path, each: dict) -> ConfigDict:
    """One analysis of configs/paper.py: its own config file, the paper's data and weights, then ``each``."""
    arg = None if paper.profile == "auto" else paper.profile
    c = config_lib.load(config_dir / f"{analysis}.py", arg)
    with c.unlocked():
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
        c.update_from_flattened_dict(each)
    return config_lib.resolve(c, overridden=each)


def run_paper(paper: ConfigDict, config_dir: Path, workdir: Path, each: dict | None = None) -> Path:
    """All analyses in ``paper.analyses``; ``each`` maps config keys to values set in every one of them."""
    from .report import build_report

    configs = {a: analysis_of_paper(paper, a, config_dir, each or {}) for a in paper.analyses}
    for a, c in configs.items():  # every analysis is checked before the first one starts
        try:
            validate(c)
        except ConfigError as e:
            raise ConfigError(f"{a}: {e}") from None
    dirs = [str(run_analysis(c, workdir / a)) for a, c in configs.items()]
    with run_logging(workdir):
        out = build_report(dirs, workdir / "report")
        log.info(f"combined report: {out}")
    return workdir


def _define_flags(fv) -> None:
    from absl import flags

    flags.DEFINE_string("workdir", None, "work directory (default: the config's workdir)", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.command(__doc__, _main, argv)


def _main(argv: list[str]) -> int:
    cpu_kernels.choice_from_env()  # a bad JAXPROBE_CPU_KERNELS is an error before any work
    parsed = cli.parse_config(argv, prog="python -m jaxprobe.run", define=_define_flags,
                              aliases={"--each.": "--config.each."})
    if parsed.rest:
        raise ConfigError(f"unexpected arguments {parsed.rest}")
    config = parsed.config
    wd = Path(parsed.flags.workdir or config.workdir).absolute()
    wd.mkdir(parents=True, exist_ok=True)
    each = {k[len("each."):]: v for k, v in config_lib.flat_values(config, parsed.overridden).items()
            if k.startswith("each.")}
    if config.analysis == "paper":
        config_file = Path(parsed.flags["config"].config_filename.rsplit(":", 1)[0])
        run_paper(config, config_file.parent, wd, each)
    elif each:
        raise ConfigError("--each.KEY=VALUE applies to configs/paper.py only; use --config.KEY=VALUE")
    else:
        run_analysis(config, wd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
