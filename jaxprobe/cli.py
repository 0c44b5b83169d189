"""Command-line plumbing shared by every command: the absl config flag, ``error: ...`` with exit 2, and ``jaxprobe``.

``--config FILE[:ARG]`` with ``--config.KEY=VALUE`` overrides is ml_collections' ``config_flags`` (values are
parsed to the key's type; ``--flagfile`` works; a misspelt flag gets absl's "did you mean"); an unknown config
key is reported with the keys that do exist at that level and the closest match. Each command parses into its
own ``FlagValues``, so commands can run one after another in one process (tests, ``configs/paper.py``).

The ``jaxprobe`` console script's subcommands are the ``python -m`` entry points:
``jaxprobe run|embed|stats|report|prepare|synth|convert ARGS`` = ``python -m jaxprobe.run ARGS`` and so on.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import re
import sys
from typing import Callable, Sequence

from absl import flags
from ml_collections import ConfigDict, config_flags

from . import config as config_lib
from . import hostmem
from .errors import ConfigError, guarded

_OVERRIDE = re.compile(r"^--?(?:no)?config\.([^=]+)")


@dataclasses.dataclass
class Parsed:
    config: ConfigDict  # resolved (jaxprobe.config.resolve)
    flags: flags.FlagValues
    rest: list[str]  # positional arguments left after the flags
    overridden: tuple[str, ...]  # the config keys set on the command line


def suggestion(word: str, known: Sequence[str]) -> str | None:
    """The known name ``word`` most likely meant: a close spelling, or an abbreviation (lr -> learning_rate)."""
    close = difflib.get_close_matches(word, list(known), n=1)
    if close:
        return close[0]
    initials = [k for k in known if "".join(part[:1] for part in k.split("_")) == word.lower()]
    prefixed = [k for k in known if k.startswith(word.lower())]
    found = sorted(initials or prefixed, key=len)
    # of several (learning_rate, learning_rates) the shortest is the likeliest; more than two is a guess
    return found[0] if 0 < len(found) <= 2 else None


def _config_argument(argv: Sequence[str]) -> str | None:
    """The FILE[:ARG] of ``--config FILE`` / ``--config=FILE`` in ``argv``."""
    for i, arg in enumerate(argv):
        if arg in ("--config", "-config") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(("--config=", "-config=")):
            return arg.split("=", 1)[1]
    return None


def _unknown_key(argv: Sequence[str], config: ConfigDict) -> str | None:
    """Why ``--config.KEY`` of ``argv`` names no key of ``config``, with the known keys and a suggestion."""
    for arg in argv:
        m = _OVERRIDE.match(arg)
        if not m:
            continue
        key = m.group(1)
        node, parts = config, key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, ConfigDict):
                return f"--config.{key}: {'.'.join(parts[:i])} is a value, not a group of keys"
            if part not in node:
                where = ".".join(parts[:i]) or "the config"
                known = sorted(node.keys())
                close = suggestion(part, known)
                hint = f"; did you mean {close!r}?" if close else ""
                return f"--config.{key}: unknown key {part!r} in {where}{hint} (known: {', '.join(known)})"
            node = node[part]
    return None


def parse_config(argv: Sequence[str], *, prog: str, define: Callable[[flags.FlagValues], None] | None = None,
                 aliases: dict[str, str] | None = None) -> Parsed:
    """Parse ``--config FILE[:ARG] [--config.KEY=VALUE ...]`` plus the flags ``define`` adds; resolve the config.

    ``aliases`` rewrites flag prefixes first (``{"--each.": "--config.each."}`` for configs/paper.py).
    """
    argv = flags.FLAGS.read_flags_from_files(list(argv), force_gnu=False)  # --flagfile=F, expanded once here
    for old, new in (aliases or {}).items():
        argv = [new + a[len(old):] if a.startswith(old) else a for a in argv]
    path = _config_argument(argv)
    if path is None:
        raise ConfigError("--config FILE is required (e.g. --config configs/ptx_custom.py)")
    plain = _load_plainly(path)  # a broken config file is reported as itself, not as absl's flag-parsing traceback
    argv = [prog, *argv]
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "analysis config file (FILE or FILE:ARG)", flag_values=fv,
                                    sys_argv=argv, lock_config=False)
    if define is not None:
        define(fv)
    try:
        rest = fv(argv)[1:]
    except flags.Error as e:
        raise ConfigError(str(e)) from None
    except (AttributeError, KeyError, TypeError, IndexError, ValueError) as e:  # a key the config does not have
        raise ConfigError(_unknown_key(argv, plain) or f"cannot apply an override: {e}") from None
    config = fv.config
    overridden = tuple(config_flags.get_override_values(fv["config"]))
    return Parsed(config_lib.resolve(config, overridden), fv, rest, overridden)


def _load_plainly(path: str) -> ConfigDict:
    try:
        return config_lib.load(path)
    except ConfigError:
        raise
    except Exception as e:  # the config file's own code failed: say where, without a traceback
        raise ConfigError(f"cannot load config {path}: {type(e).__name__}: {e}") from None


COMMANDS = {  # name: (module with main(argv), the equivalent python -m, what it does)
    "run": ("jaxprobe.run", "jaxprobe.run", "one analysis (or configs/paper.py) end to end"),
    "embed": ("jaxprobe.embed.__main__", "jaxprobe.embed", "embedding extraction alone"),
    "stats": ("jaxprobe.stats.__main__", "jaxprobe.stats", "bootstrap CIs and paired tests on prediction files"),
    "report": ("jaxprobe.report", "jaxprobe.report", "Table 2, Table S1 and figures from run directories"),
    "prepare": ("jaxprobe.data.prepare", "jaxprobe.data.prepare", "prepare a data set once as a TFDS dataset"),
    "synth": ("jaxprobe.data.synth", "jaxprobe.data.synth", "write the synthetic phantom set"),
    "convert": ("jaxprobe.encoders.conversion.cli", "convert", "port a PyTorch checkpoint to Flax, check parity"),
}


def command(doc: str, body: Callable[[list[str]], int], argv: Sequence[str] | None = None) -> int:
    """A config-driven command's entry: no arguments prints ``doc`` and exits 2, ``-h``/``--help`` prints it and
    exits 0, anything else sets the host memory policy (``jaxprobe.hostmem``) and runs ``body(argv)`` with every
    user-caused error as ``error: ...`` and exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(doc)
        return 0 if argv else 2

    def run() -> int:
        hostmem.apply()  # before the body starts JAX's CPU client; a bad JAXPROBE_HOST_MEMORY is an error
        return body(argv)

    return guarded(run)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``jaxprobe`` console script: ``jaxprobe COMMAND ARGS`` runs ``python -m <module> ARGS``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: jaxprobe COMMAND [ARGS]\n\ncommands:\n" + "\n".join(
        f"  {name:<8} {text}  (python -m {alias})" for name, (_, alias, text) in COMMANDS.items())
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        close = suggestion(argv[0], list(COMMANDS))
        print(f"error: unknown command {argv[0]!r}{f'; did you mean {close!r}?' if close else ''}\n\n{usage}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
