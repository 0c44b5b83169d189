"""``python -m jaxprobe.embed --config configs/<analysis>.py [--distributed] [--config.KEY=VALUE ...]``

Extraction alone: builds (or resumes, or reuses) the embedding store of every encoder of the analysis for its
images, exactly as ``python -m jaxprobe.run`` does before training, and prints where each store is.
``--distributed`` calls ``jax.distributed.initialize()`` first (cluster auto-detection, or the
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID variables): run the same command on every host
and each process embeds its share of the chunks into the same store folder (a shared file system).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Sequence

from .. import cli, tasks
from ..errors import ConfigError


def _define_flags(fv) -> None:
    from absl import flags

    flags.DEFINE_bool("distributed", False, "call jax.distributed.initialize() first (multi-host)", flag_values=fv)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.command(__doc__, _main, argv)


def _main(argv: list[str]) -> int:
    from ..embed.analysis import store_for
    from ..encoders import cpu_kernels
    from ..heads import FEATURES
    from ..inputs import check_target, load_inputs
    from ..validate import validate

    cpu_kernels.choice_from_env()  # a bad JAXPROBE_CPU_KERNELS is an error before any work
    parsed = cli.parse_config(argv, prog="python -m jaxprobe.embed", define=_define_flags)
    config = parsed.config
    if parsed.rest:
        raise ConfigError(f"unexpected arguments {parsed.rest}")
    if "encoders" not in config:
        raise ConfigError(f"{parsed.flags['config'].config_filename} is not a single-analysis config "
                          "(no encoders section)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if parsed.flags.distributed:
        import jax

        jax.distributed.initialize()
    validate(config)
    logging.getLogger("jaxprobe.embed").info(cpu_kernels.describe())
    task = tasks.get(config.task)
    check_target(config, task)
    workdir = Path(config.workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    inputs = load_inputs(config, task, workdir)
    for name in config.encoders.names:
        _, store = store_for(config, task, name, inputs, FEATURES[config.head.name],
                             log=logging.getLogger("jaxprobe.embed").info)
        print(f"{name}: {store.path} ({store.n} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
