"""The converter's command line, ``python -m convert NAME --src FOLDER_OR_HUB_ID --out DIR`` (NAME: a registry
entry — rad_dino, chexagent, biomedclip, ... — or a family: dinov2, dinov3, siglip, clip, open_clip, timm_vit) and
``python -m convert verify --ckpt DIR --src FOLDER_OR_HUB_ID``. A hub id ``org/name[@revision]`` is resolved
through huggingface_hub (``HF_HUB_OFFLINE=1``: the cache only). Exits 0 when parity holds, 1 when it fails, 2 on
bad input (``error: ...``)."""
from __future__ import annotations

import argparse
import sys

from jaxprobe.encoders import families, registry
from jaxprobe.errors import JaxprobeError

from .hub import resolve
from .parity import DEFAULT_TOLERANCE, verify
from .pipeline import convert

FAMILY_HELP = {
    "dinov2": "a transformers Dinov2Model or Dinov2WithRegistersModel folder",
    "dinov3": "a transformers DINOv3ViTModel folder",
    "siglip": "a transformers SiglipModel / SiglipVisionModel folder (any size, e.g. MedSigLIP-448)",
    "clip": "a transformers CLIPModel / CLIPVisionModel(WithProjection) folder",
    "open_clip": "an open_clip folder (open_clip_config.json): native ViT or timm-backed tower",
    "timm_vit": "an open_clip folder with a timm-backed tower (as open_clip does)",
}


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
    helps = {name: f"convert a {registry.get(name).display_name} checkpoint ({registry.get(name).family} family)"
             for name in registry.names()}
    helps.update({name: f"convert {FAMILY_HELP.get(name, f'a {name} checkpoint')}" for name in families.names()
                  if name not in helps})
    for name, text in helps.items():
        p = sub.add_parser(name, help=text)
        p.add_argument("--src", required=True,
                       help="folder with the original checkpoint files, or a Hugging Face hub id org/name[@revision]")
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
        src, hub = resolve(args.src, "--src", log=print)
        if args.command == "verify":
            report = verify(args.ckpt, src, out_file=args.out_file, **kw)
        else:
            report = convert(args.command, src, args.out, parity=not args.no_parity, hub=hub, **kw)
    except (JaxprobeError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if report.get("passed") in (True, None) else 1


if __name__ == "__main__":
    sys.exit(main())
