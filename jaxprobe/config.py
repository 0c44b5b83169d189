"""Analysis configs: loading a config file, and resolving it into the plain values every later stage reads.

A config file is an ``ml_collections`` Python file with ``get_config(arg=None)`` (big_vision style); the command
line loads it through ``jaxprobe.cli`` (absl ``config_flags``). ``resolve`` runs once, after the command-line
overrides, before any work: it settles the profile (the embedded default's reductions or the study's sizes),
splits comma-separated lists and checks the settings, so that training and model code only ever see resolved
values, and ``config.json`` records exactly what ran.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ml_collections import ConfigDict

from .errors import ConfigError

PROFILES = ("auto", "demo", "full")
PROTOCOLS = ("paper", "authors")


def load(path: str | Path, arg: str | None = None) -> ConfigDict:
    """The ConfigDict of ``get_config(arg)`` in the file ``path`` (``FILE:ARG`` is accepted as well)."""
    text = str(path)
    if arg is None and ":" in Path(text).name:
        text, arg = text.rsplit(":", 1)
    module = module_beside(Path(text), None)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{text}: no get_config() function")
    config = module.get_config(arg) if arg is not None else module.get_config()
    if not isinstance(config, ConfigDict):
        raise ConfigError(f"{text}: get_config() returned {type(config).__name__}, expected ml_collections.ConfigDict")
    return config


def module_beside(config_file: str | Path, name: str | None):
    """Import the module ``name`` from the folder of ``config_file`` (or the file itself when ``name`` is None).

    Config files share code (``configs/common.py``) without relying on the working directory or sys.path:
    ``base = module_beside(__file__, "common").base``.
    """
    path = Path(config_file).absolute()
    if name is not None:
        path = path.parent / f"{name}.py"
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    spec = importlib.util.spec_from_file_location(f"jaxprobe_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def profile_arg(arg: str | None) -> str:
    """The profile named by a config file's argument (``configs/ptx_custom.py:demo``); no argument is "auto"."""
    profile = arg or "auto"
    if profile not in PROFILES:
        raise ConfigError(f"config argument {arg!r}: expected one of {list(PROFILES)} (e.g. configs/ptx_custom.py:full)")
    return profile


def user_cache_root(environ=None) -> Path:
    """jaxprobe's folder in the user's cache: ``$XDG_CACHE_HOME/jaxprobe`` where that variable holds an absolute
    path (the XDG base directory spec ignores an empty or relative one), else ``~/.cache/jaxprobe``. The default
    ``cache_dir`` of every analysis and the home of the compiled CPU kernels."""
    base = (os.environ if environ is None else environ).get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path(os.path.expanduser("~")) / ".cache"
    return root / "jaxprobe"


def cache_dir(config: ConfigDict) -> Path:
    """Where synthetic data, converted checkpoints and embedding stores are kept (``config.cache_dir``)."""
    return Path(os.path.expanduser(config.cache_dir)).absolute()


def data_given(config: ConfigDict) -> bool:
    d = config.data
    return bool(d.root or d.nih_root or d.manifest or d.table.path)


def random_encoders(config: ConfigDict) -> list[str]:
    """Encoders of the analysis without a checkpoint: randomly initialised, reduced to ``encoders.random``."""
    return [n for n in config.encoders.names if not config.encoders[n].checkpoint]


def split_lists(config: ConfigDict) -> None:
    """``--config.encoders.names=a,b`` arrives as the one string "a,b" in a tuple: split such items."""
    for key, value in list(config.items()):
        if isinstance(value, ConfigDict):
            split_lists(value)
        elif isinstance(value, tuple) and any(isinstance(v, str) and "," in v for v in value):
            config[key] = tuple(part.strip() for v in value for part in (v.split(",") if isinstance(v, str) else [v])
                                if not isinstance(part, str) or part.strip())


def leaves(block: ConfigDict, prefix: str = ""):
    """(dotted key, value) of every value in ``block``, depth first."""
    for key, value in block.items():
        if isinstance(value, ConfigDict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def apply_block(config: ConfigDict, block: ConfigDict, overridden, name: str) -> None:
    """Put the values of ``block`` (a mirror of part of the config's structure) into ``config``, except the keys
    set on the command line (``overridden``, or one of their parent groups)."""
    for key, value in leaves(block):
        parts = key.split(".")
        if any(".".join(parts[:i]) in overridden for i in range(1, len(parts) + 1)):
            continue
        node = config
        for part in parts[:-1]:
            if part not in node or not isinstance(node[part], ConfigDict):
                raise ConfigError(f"{name}.{key}: the config has no key {key}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"{name}.{key}: the config has no key {key}")
        node[parts[-1]] = value


def resolve(config: ConfigDict, overridden=()) -> ConfigDict:
    """Settle the protocol, the profile and the lists of ``config`` in place and return it.

    The profile's block applies first, then protocol "authors" puts the ``authors`` block's values in place (the
    authors' public code where it differs from the paper; on the embedded default they win over the demo's
    training settings where both set a key).

    Profile "auto" is the embedded default ("demo") when no data root is given or an encoder has no checkpoint,
    else "full". "demo" puts the ``demo`` block's values in place (the block mirrors the config: ``demo.train.
    max_epochs`` replaces ``train.max_epochs``, ``demo.head.custom`` the custom head's sizes — full size is
    ~38 s per step on 2 CPU cores) — except for the keys named in ``overridden`` (the command line's
    ``--config.KEY=VALUE`` paths), which keep the value the user gave, as big_vision applies overrides after its
    ``runlocal`` argument.
    """
    overridden = set(overridden)
    with config.unlocked():
        split_lists(config)
        if "analyses" in config:  # configs/paper.py: each analysis resolves itself
            return config
        if config.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol {config.protocol!r}: expected one of {list(PROTOCOLS)}")
        profile = config.profile
        if profile not in PROFILES:
            raise ConfigError(f"profile {profile!r}: expected one of {list(PROFILES)}")
        if profile == "auto":
            profile = "demo" if not data_given(config) or random_encoders(config) else "full"
        if profile == "demo":
            apply_block(config, config.demo, overridden, "demo")
        if config.protocol == "authors":  # after the demo block: the protocol a user names wins over the demo's
            apply_block(config, config.authors, overridden, "authors")
        config.profile = profile
    return config


def flat_values(config: ConfigDict, keys) -> dict:
    """``{dotted key: value}`` of ``config`` for the given dotted keys."""
    out = {}
    for key in keys:
        node = config
        for part in key.split("."):
            node = node[part]
        out[key] = node
    return out
