"""The one reader of Hugging Face and open_clip folders: config JSONs, preprocessor specs and weights
(.safetensors, .bin, sharded indexes), as every family converter reads them."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from jaxprobe.encoders.config import ViTConfig
from jaxprobe.encoders.spec import EncoderSpec
from jaxprobe.errors import ConversionError


def read_json(path: Path, required: bool = True) -> dict | None:
    if not path.is_file():
        if required:
            raise ConversionError(f"{path} not found (expected in the checkpoint folder)")
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConversionError(f"{path}: not valid JSON ({e})") from None


def find_weights(folder: Path, candidates: list[str]) -> list[Path]:
    """The first candidate present; a ``*.index.json`` expands to its shards."""
    if not folder.is_dir():
        raise ConversionError(f"{folder}: not a folder")
    for name in candidates:
        p = folder / name
        if p.is_file():
            if name.endswith(".index.json"):
                index = read_json(p)
                shards = sorted(set(index.get("weight_map", {}).values()))
                if not shards:
                    raise ConversionError(f"{p}: no 'weight_map' entries")
                paths = [folder / s for s in shards]
                absent = [str(s) for s in paths if not s.is_file()]
                if absent:
                    raise ConversionError(f"{p}: shards missing: {absent}")
                return paths
            return [p]
    raise ConversionError(f"{folder}: no weight file found; looked for {candidates}")


def _to_numpy(t) -> np.ndarray:
    import torch

    if t.is_floating_point():
        t = t.to(torch.float32)
    return t.detach().cpu().numpy()


def load_state_dict(paths: list[Path]) -> dict[str, np.ndarray]:
    """All tensors of the weight files as float32 numpy arrays (``.bin`` read with ``weights_only=True``)."""
    import torch

    out: dict[str, np.ndarray] = {}
    for p in paths:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            try:
                tensors = load_file(str(p))
            except Exception as e:
                raise ConversionError(f"{p}: cannot read safetensors file ({e})") from None
        else:
            try:
                obj = torch.load(str(p), map_location="cpu", weights_only=True)
            except Exception as e:
                raise ConversionError(f"{p}: cannot load with torch.load(weights_only=True) ({e})") from None
            # training checkpoints nest the weights; DDP prefixes them with "module."
            if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
                obj = obj["state_dict"]
            if not isinstance(obj, dict):
                raise ConversionError(f"{p}: expected a state dict, found {type(obj).__name__}")
            tensors = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
        for k, v in tensors.items():
            if not hasattr(v, "is_floating_point"):
                raise ConversionError(f"{p}: entry {k!r} is a {type(v).__name__}, not a tensor")
            out[k] = _to_numpy(v)
    return out


def sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def input_size_of(value, what: str) -> int:
    """HF processors store sizes as an int or a dict ({height, width} | {shortest_edge})."""
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        if "shortest_edge" in value:
            return int(value["shortest_edge"])
        if "height" in value and "width" in value:
            if value["height"] != value["width"]:
                raise ConversionError(f"{what}: non-square size {value} is not supported")
            return int(value["height"])
    raise ConversionError(f"{what}: cannot read a size from {value!r}")


class quiet_transformers:
    """Silence transformers' load report (it lists the ignored text tower key by key) and progress bars."""

    def __enter__(self):
        from transformers.utils import logging

        self._level = logging.get_verbosity()
        logging.set_verbosity_error()
        logging.disable_progress_bar()
        return self

    def __exit__(self, *exc):
        from transformers.utils import logging

        logging.set_verbosity(self._level)
        logging.enable_progress_bar()
        return False


# PIL's resampling filters by the numbers Hugging Face processors store (PILImageResampling)
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


def resample_of(value, default: str, where: str) -> str:
    if value is None:
        return default
    if value in _PIL_RESAMPLE:
        return _PIL_RESAMPLE[value]
    raise ConversionError(f"{where}: resample {value!r} is not supported (expected one of {_PIL_RESAMPLE})")


def preprocessor_spec(pre: dict | None, cfg: ViTConfig, default: EncoderSpec, where: str, *,
                      center_crop: bool) -> tuple[EncoderSpec, str]:
    """The spec of a Hugging Face ``preprocessor_config.json`` (None: the folder has none, use ``default``'s
    mean/std and resize rule at the model's native size); returns it and where its values came from.

    ``center_crop`` is the processor class's default when the file does not say (transformers' BitImageProcessor
    of DINOv2 crops, SiglipImageProcessor resizes directly). A crop means: shortest edge to the size, then the
    centre crop; no crop means a direct resize, unless the size is a ``shortest_edge``.
    """
    if pre is None:
        spec = EncoderSpec(cfg.family, cfg.image_size, cfg.patch_size, default.mean, default.std, default.resize,
                           cfg.global_dim, cfg.width, resample=default.resample)
        return spec, f"defaults of the registry entry (mean/std {default.mean[0]:g}/{default.std[0]:g}, " \
                     f"{default.resize}; no preprocessor_config.json)"
    if pre.get("do_center_crop", center_crop):
        size = input_size_of(pre.get("crop_size", pre.get("size", cfg.image_size)), f"{where} crop_size")
        resize = "shortest_edge_center_crop"
    else:
        value = pre.get("size", cfg.image_size)
        size = input_size_of(value, f"{where} size")
        resize = "shortest_edge_center_crop" if isinstance(value, dict) and "shortest_edge" in value else "direct"
    mean = tuple(float(x) for x in pre.get("image_mean", default.mean))
    std = tuple(float(x) for x in pre.get("image_std", default.std))
    resample = resample_of(pre.get("resample"), default.resample, f"{where} resample")
    return (EncoderSpec(cfg.family, size, cfg.patch_size, mean, std, resize, cfg.global_dim, cfg.width,
                        resample=resample), "preprocessor_config.json")


def hf_folder(src: Path, weights: list[str], config_from_hf, default: EncoderSpec, *, center_crop: bool,
              canonical_key=lambda k: k):
    """(config, spec, spec source, state dict with canonical keys, weight files) of a Hugging Face model folder."""
    cfg = config_from_hf(read_json(src / "config.json"), str(src / "config.json"))
    spec, spec_source = preprocessor_spec(read_json(src / "preprocessor_config.json", required=False), cfg, default,
                                          str(src / "preprocessor_config.json"), center_crop=center_crop)
    files = find_weights(src, weights)
    return cfg, spec, spec_source, {canonical_key(k): v for k, v in load_state_dict(files).items()}, files
