"""``python -m jaxprobe.embed --config configs/<analysis>.py [--config.KEY=VALUE ...]``: extraction alone.

Builds (or resumes, or reuses) the embedding store of every encoder of the analysis for its images, exactly as
``python -m jaxprobe.run`` does before training, and prints where each store is.
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
    try:
        config = apply_overrides(load_config_file(argv[1]), argv[2:])
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
