"""Loading an analysis config (an ml_collections Python file with ``get_config()``) and command-line overrides.

``--config.train.learning_rate=3e-4`` sets an existing key; the value is parsed to the type the key already has
(bool, int, float, str, tuple), and an unknown key or an unparsable value is an error that names the key.
"""
from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from typing import Sequence

from ml_collections import ConfigDict

from .errors import ConfigError




def load_config_file(path: str | Path) -> ConfigDict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    # The config's folder is importable while it loads, so analyses can share `configs/common.py`.
    sys.path.insert(0, str(path.parent.absolute()))
    try:
        spec = importlib.util.spec_from_file_location(f"jaxprobe_config_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent.absolute()))
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path}: no get_config() function")
    config = module.get_config()
    if not isinstance(config, ConfigDict):
        raise ConfigError(f"{path}: get_config() returned {type(config).__name__}, expected ml_collections.ConfigDict")
    return config


def _parse(key: str, text: str, current):
    if isinstance(current, bool):
        low = text.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ConfigError(f"--config.{key}: expected true/false, got {text!r}")
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ConfigError(f"--config.{key}: expected a number, got {text!r}") from None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"--config.{key}: expected a number, got {text!r}")
        if isinstance(current, int) and not float(value).is_integer():
            raise ConfigError(f"--config.{key}: expected an integer, got {text!r}")
        return type(current)(value)
    if isinstance(current, (tuple, list)):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = tuple(t.strip() for t in text.split(",") if t.strip())
        if not isinstance(value, (tuple, list)):
            value = (value,)
        return tuple(value)
    if isinstance(current, ConfigDict):
        raise ConfigError(f"--config.{key} is a group ({', '.join(sorted(current.keys()))}); set one of its keys")
    return text


def apply_overrides(config: ConfigDict, overrides: Sequence[str]) -> ConfigDict:
    for item in overrides:
        if not item.startswith("--config.") or "=" not in item:
            raise ConfigError(f"cannot read override {item!r}; expected --config.KEY=VALUE")
        key, text = item[len("--config."):].split("=", 1)
        node = config
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, ConfigDict) or part not in node:
                where = ".".join(parts[:i]) or "config"
                known = ", ".join(sorted(node.keys())) if isinstance(node, ConfigDict) else "none"
                raise ConfigError(f"--config.{key}: unknown key {part!r} in {where} (known: {known})")
            if i < len(parts) - 1:
                node = node[part]
        with config.unlocked():
            node[parts[-1]] = _parse(key, text, node[parts[-1]])
    return config
