"""The converter's command line, ``python -m convert ENCODER --src PATH --out DIR`` (ENCODER: a registry entry,
e.g. rad_dino, chexagent, biomedclip) and ``python -m convert verify --ckpt DIR --src PATH``.
Exits 0 when parity holds, 1 when it fails, 2 on bad input (``error: ...``)."""
from __future__ import annotations

import argparse
import sys

from jaxprobe.encoders import registry
from jaxprobe.errors import JaxprobeError

from .parity import DEFAULT_TOLERANCE, verify
from .pipeline import convert


def _parity_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="maximum relative error ||flax-torch||/||torch|| (default %(default)g)")
    p.add_argument("--n-images", type=int, default=3, help="random images at the native size (default 3)")
    p.add_argument("--nonnative-size", type=int, default=None,
                   help="second input size, exercising position-embedding resampling (default 3/4 of native)")
    p.add_argument("--seed", type=int, default=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in registry.names():
        entry = registry.get(name)
        p = sub.add_parser(name, help=f"convert a {entry.display_name} checkpoint ({entry.family} family)")
        p.add_argument("--src", required=True, help="folder with the original checkpoint files")
        p.add_argument("--out", required=True, help="output folder (Orbax params + encoder.json + parity.json)")
        p.add_argument("--no-parity", action="store_true", help="skip the parity check against the PyTorch code")
        _parity_args(p)
    p = sub.add_parser("verify", help="re-run the parity check of a converted folder against its source")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--out-file", default=None, help="where to write parity.json (default CKPT/parity.json)")
    _parity_args(p)
    args = parser.parse_args(argv)
    kw = dict(tolerance=args.tolerance, n_images=args.n_images, nonnative_size=args.nonnative_size, seed=args.seed)
    try:
        if args.command == "verify":
            report = verify(args.ckpt, args.src, out_file=args.out_file, **kw)
        else:
            report = convert(args.command, args.src, args.out, parity=not args.no_parity, **kw)
    except (JaxprobeError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if report.get("passed") in (True, None) else 1


if __name__ == "__main__":
    sys.exit(main())
