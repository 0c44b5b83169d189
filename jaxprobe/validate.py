"""Checks a resolved analysis config against every stage's rules before any work starts.

A setting that would fail hours into a run on real data (a misspelt metric, a CI level of 95, a split that does
not sum to one) stops the run here, at once, with every problem listed by its key.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from ml_collections import ConfigDict

from . import metrics, tasks
from .errors import ConfigError, JaxprobeError


def _problems(config: ConfigDict):
    """(key, problem) for everything wrong with ``config``."""
    try:
        task = tasks.get(config.task)
    except ConfigError as e:
        yield "task", str(e)
        return
    yield from _head(config, task)
    yield from _stats(config, task)
    yield from _train(config)
    yield from _data(config)
    yield from _encoders(config)


def _number(value, low, high, *, integer=False, low_open=False, high_open=False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    if integer and int(value) != value:
        return False
    return (value > low if low_open else value >= low) and (value < high if high_open else value <= high)


def _head(config, task):
    from .heads import HEADS

    if config.head.name not in HEADS:
        yield "head.name", f"{config.head.name!r} is not a head; expected one of {list(HEADS)}"
    elif config.head.name not in task.heads:
        yield "head.name", f"{config.head.name!r} does not fit task {task.name!r}; expected one of {list(task.heads)}"
    c = config.head.custom
    if len(c.widths) != 2 or not all(_number(w, 1, 1 << 16, integer=True) for w in c.widths):
        yield "head.custom.widths", f"two positive conv widths expected, got {tuple(c.widths)}"
    elif c.attention_dim != c.widths[-1]:
        yield "head.custom.attention_dim", (f"{c.attention_dim} must equal widths[-1]={c.widths[-1]}: the attention "
                                            "output is added to every position of the refined map")
    elif not _number(c.num_heads, 1, c.attention_dim, integer=True) or c.attention_dim % c.num_heads:
        yield "head.custom.num_heads", f"{c.num_heads} must divide attention_dim={c.attention_dim}"
    if not _number(c.refine_size, 1, 4096, integer=True):
        yield "head.custom.refine_size", f"a positive size expected, got {c.refine_size}"


def _stats(config, task):
    from .stats import POINT_ESTIMATES, TESTS

    s = config.stats
    if not s.metrics:
        yield "stats.metrics", f"no metric named; task {task.name!r} has {list(task.metrics)}"
    for name in s.metrics:
        try:
            info = metrics.resolve_metric(name, s.pr_auc)
        except ValueError as e:
            yield "stats.metrics", str(e)
            continue
        if info.kind != task.metric_kind:
            yield "stats.metrics", (f"{name!r} is a {info.kind} metric; task {task.name!r} is scored by "
                                    f"{task.metric_kind} metrics such as {list(task.metrics)}")
    checks = [
        ("n_resamples", _number(s.n_resamples, 1, 10**8, integer=True), "a whole number of resamples >= 1"),
        ("ci_level", _number(s.ci_level, 0, 1, low_open=True, high_open=True), "a level in (0, 1), e.g. 0.95"),
        ("alpha", _number(s.alpha, 0, 1, low_open=True, high_open=True), "a significance level in (0, 1)"),
        ("mask_threshold", _number(s.mask_threshold, 0, 1, low_open=True, high_open=True),
         "a probability in (0, 1)"),
        ("seed", _number(s.seed, 0, 2**63, integer=True), "a non-negative integer"),
        ("point_estimate", s.point_estimate in POINT_ESTIMATES, f"one of {list(POINT_ESTIMATES)}"),
        ("pr_auc", s.pr_auc in metrics.PR_AUC_DEFINITIONS, f"one of {list(metrics.PR_AUC_DEFINITIONS)}"),
        ("empty_mask_rule", s.empty_mask_rule in metrics.EMPTY_MASK_RULES, f"one of {list(metrics.EMPTY_MASK_RULES)}"),
        ("stratified", isinstance(s.stratified, bool), "true or false"),
        ("test", s.test in TESTS, f"one of {list(TESTS)}"),
    ]
    for key, ok, expected in checks:
        if not ok:
            yield f"stats.{key}", f"{s[key]!r}: expected {expected}"
    if not isinstance(config.log.tensorboard, bool):
        yield "log.tensorboard", f"{config.log.tensorboard!r}: expected true or false"
    from .stats.operating import RULES

    op = s.operating_point
    if op.rule not in RULES:
        yield "stats.operating_point.rule", f"{op.rule!r}: expected one of {list(RULES)}"
    if not _number(op.sensitivity, 0, 1, low_open=True):
        yield "stats.operating_point.sensitivity", f"{op.sensitivity!r}: expected a sensitivity in (0, 1]"


def _train(config):
    from .train import TrainConfig

    try:
        TrainConfig.from_dict(config.train.to_dict())
    except (TypeError, ValueError) as e:
        yield "train", str(e)
    t = config.train
    if not all(_number(s, 0, 2**32 - 1, integer=True) for s in t.seeds):
        yield "train.seeds", f"non-negative integer seeds expected, got {tuple(t.seeds)}"
    for key in ("learning_rate", "weight_decay", "min_delta"):
        if not _number(t[key], 0, math.inf):
            yield f"train.{key}", f"a non-negative number expected, got {t[key]!r}"
    if not t.learning_rate > 0:
        yield "train.learning_rate", f"must be positive, got {t.learning_rate!r}"


def _data(config):
    d = config.data
    f = tuple(d.split_fractions)
    if len(f) != 3 or not all(_number(x, 0, 1) for x in f) or not np.isclose(sum(f), 1.0):
        yield "data.split_fractions", f"three non-negative fractions (train, val, test) summing to 1 expected, got {f}"
    elif min(f) == 0:
        yield "data.split_fractions", f"every split needs cases (training, early stopping, testing), got {f}"
    if d.scaling not in ("range", "minmax"):
        yield "data.scaling", f"{d.scaling!r}: expected 'range' or 'minmax'"
    if d.mask_resample not in ("nearest", "bilinear", "bicubic", "lanczos"):
        yield "data.mask_resample", f"{d.mask_resample!r}: expected nearest, bilinear, bicubic or lanczos"
    if not _number(d.mask_threshold, 0, 1, low_open=True):
        yield "data.mask_threshold", f"a fraction in (0, 1] expected, got {d.mask_threshold!r}"
    if d.on_error not in ("raise", "skip"):
        yield "data.on_error", f"{d.on_error!r}: expected 'raise' or 'skip'"
    if d.table.path and not Path(d.table.path).is_file():
        yield "data.table.path", f"{d.table.path} is not a file (the cohort CSV)"
    if d.split_file and not Path(d.split_file).is_file():
        yield "data.split_file", f"{d.split_file} is not a file"
    if not _number(d.min_dice, 0, 1):
        yield "data.min_dice", f"a Dice in [0, 1] expected, got {d.min_dice!r}"
    if not _number(d.synthetic.n, 10, 10**6, integer=True):
        yield "data.synthetic.n", f"at least 10 phantoms needed, got {d.synthetic.n!r}"
    if d.views and d.source != "cardiomegaly":
        yield "data.views", f"view positions are read for the cardiomegaly source only; set () for {d.source!r}"
    if not all(isinstance(v, str) and v.strip() for v in d.views):
        yield "data.views", f"view positions (strings such as 'PA', 'AP') expected, got {tuple(d.views)!r}"
    if not _number(d.synthetic.positive_fraction, 0, 1, low_open=True, high_open=True):
        yield "data.synthetic.positive_fraction", f"a fraction in (0, 1) expected, got {d.synthetic.positive_fraction!r}"


def _encoders(config):
    from .encoders import families, registry
    from .encoders.conversion.hub import is_hub_id
    from .encoders.transformer import DTYPES

    names = tuple(config.encoders.names)
    if not names:
        yield "encoders.names", "no encoder named"
    if len(set(names)) != len(names):
        yield "encoders.names", f"an encoder is named twice: {names}"
    for name in names:
        if name not in config.encoders or not isinstance(config.encoders[name], ConfigDict):
            known = sorted(k for k, v in config.encoders.items() if isinstance(v, ConfigDict) and k != "random")
            yield "encoders.names", f"{name!r} has no encoders.{name} block; configured: {known}"
            continue
        e = config.encoders[name]
        if name not in registry.names():
            if not e.get("family"):
                yield "encoders.names", (f"{name!r} is not a registered encoder ({list(registry.names())}); declare "
                                         f"it with encoders.{name}.family and encoders.{name}.checkpoint")
            elif e.family not in families.names():
                yield f"encoders.{name}.family", f"{e.family!r}: expected one of {list(families.names())}"
            elif not e.checkpoint:
                yield f"encoders.{name}.checkpoint", "a config-declared encoder needs its weights"
        elif e.get("family") and e.family != registry.get(name).family:
            yield f"encoders.{name}.family", (f"{e.family!r}, but the registered {name} is a "
                                              f"{registry.get(name).family} encoder")
        expected = e.get("family") or (registry.get(name).family if name in registry.names() else "")
        if e.checkpoint and (Path(e.checkpoint) / "encoder.json").is_file() and expected:
            try:
                found = json.loads((Path(e.checkpoint) / "encoder.json").read_text()).get("family")
            except (OSError, ValueError) as error:
                yield f"encoders.{name}.checkpoint", f"{e.checkpoint}/encoder.json is unreadable ({error})"
                continue
            if found != expected:  # a BiomedCLIP folder given as rad_dino would run and be reported as RAD-DINO
                yield f"encoders.{name}.checkpoint", (f"{e.checkpoint} holds a {found} encoder, but {name} is a "
                                                      f"{expected} encoder")
        if e.checkpoint and not Path(e.checkpoint).exists() and not is_hub_id(e.checkpoint):
            yield f"encoders.{name}.checkpoint", (f"{e.checkpoint} is neither a folder nor a Hugging Face hub id "
                                                  "(org/name)")
        if not _number(e.input_size, 0, 8192, integer=True):
            yield f"encoders.{name}.input_size", f"0 (the checkpoint's own) or a size in pixels, got {e.input_size!r}"
    if config.embed.dtype not in DTYPES:
        yield "embed.dtype", f"{config.embed.dtype!r}: expected one of {sorted(DTYPES)}"
    for key in ("batch_size", "chunk_size"):
        if not _number(config.embed[key], 1, 10**7, integer=True):
            yield f"embed.{key}", f"a positive integer expected, got {config.embed[key]!r}"
    if not _number(config.embed.workers, 0, 1024, integer=True):
        yield "embed.workers", f"a non-negative integer expected, got {config.embed.workers!r}"


def validate(config: ConfigDict) -> None:
    """Raise one ConfigError listing every problem of the resolved analysis ``config``."""
    try:
        problems = list(_problems(config))
    except JaxprobeError:
        raise
    except (KeyError, AttributeError) as e:
        raise ConfigError(f"the config lacks a key every analysis needs: {e}") from None
    if problems:
        raise ConfigError("the config cannot run:\n" + "\n".join(f"  {key}: {why}" for key, why in problems))
