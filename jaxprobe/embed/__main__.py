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
from typing import Sequence

from ..config import ConfigError, apply_overrides, load_config_file
from ..inputs import RunError, load_inputs, store_for


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] != "--config" or len(argv) < 2:
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    rest = argv[2:]
    if "--distributed" in rest:
        import jax

        rest.remove("--distributed")
        jax.distributed.initialize()
    try:
        config = apply_overrides(load_config_file(argv[1]), rest)
        if "encoders" not in config:
            raise ConfigError(f"{argv[1]} is not a single-analysis config (no encoders section)")
        from pathlib import Path

        workdir = Path(config.workdir).absolute()
        workdir.mkdir(parents=True, exist_ok=True)
        inputs = load_inputs(config, workdir)
        for name in config.encoders.names:
            _, store = store_for(config, name, inputs, log=logging.getLogger("jaxprobe.embed").info)
            print(f"{name}: {store.path} ({store.n} records)")
    except (ConfigError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
