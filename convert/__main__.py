"""``python -m convert ENCODER --src PATH --out DIR`` / ``python -m convert verify --ckpt DIR --src PATH``
(see ``jaxprobe.encoders.conversion.cli``)."""
import sys

from jaxprobe.encoders.conversion.cli import main

if __name__ == "__main__":
    sys.exit(main())
