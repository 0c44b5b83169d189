"""The parity check: the same random images through the Flax port and the original PyTorch module, written to
``parity.json`` (relative and max abs error of the global embedding and the patch tokens, native size and one
non-native size that exercises position-embedding resampling)."""
from __future__ import annotations

import datetime as _dt
import importlib
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from jaxprobe.encoders import checkpoint, families, load

DEFAULT_TOLERANCE = 1e-5  # relative error ||flax - torch|| / ||torch||, float32 on CPU
PARITY_FILE = "parity.json"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("jax", "flax", "numpy", "torch", "transformers", "open_clip", "timm"):
        try:
            out[mod] = importlib.import_module(mod).__version__
        except Exception:  # a missing optional library is recorded as such, not fatal here
            out[mod] = "not installed"
    return out


def _errors(ours: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        raise AssertionError(f"shape mismatch: flax {ours.shape} vs torch {ref.shape}")
    diff = ours - ref
    return {"max_abs": float(np.abs(diff).max()), "rel": float(np.linalg.norm(diff) / np.linalg.norm(ref)),
            "max_abs_ref": float(np.abs(ref).max())}


def default_nonnative_size(native: int, patch: int) -> int:
    """Three quarters of the native size, on the patch grid: exercises position-embedding resampling."""
    return max(patch, int(round(0.75 * native / patch)) * patch)


def verify(ckpt: str | Path, src: str | Path, *, tolerance: float = DEFAULT_TOLERANCE, n_images: int = 3,
           nonnative_size: int | None = None, seed: int = 0, out_file: str | Path | None = None,
           log=print) -> dict[str, Any]:
    """Feed the same random images to the Flax port and the original module; write ``parity.json``."""
    config, spec, meta = checkpoint.read_meta(ckpt)
    name = meta.get("provenance", {}).get("name") or config.family
    reference = families.get(config.family).converter().reference(Path(src))
    native = spec.input_size
    other = nonnative_size or default_nonnative_size(native, spec.patch_size)
    rng = np.random.default_rng(seed)
    cases = []
    for size, count in ((native, n_images), (other, 1)):
        encoder = load(ckpt, input_size=size)
        pixels = rng.standard_normal((count, size, size, 3)).astype(np.float32)
        # waited for before the reference starts: JAX dispatches asynchronously, and the two frameworks computing
        # at once on the same cores oversubscribe them (in a full-size check the reference's GEMMs ran at half speed)
        g, p = (np.asarray(a) for a in encoder.embed(pixels))
        ref_g, ref_p = reference(pixels)
        case = {"input_size": size, "native": size == native, "n_images": count,
                "global": _errors(g, ref_g), "patches": _errors(p, ref_p),
                "global_shape": list(np.shape(g)), "patches_shape": list(np.shape(p))}
        cases.append(case)
        log(f"parity {name} @ {size}px x{count}: global rel {case['global']['rel']:.2e} "
            f"(max abs {case['global']['max_abs']:.2e}), patches rel {case['patches']['rel']:.2e} "
            f"(max abs {case['patches']['max_abs']:.2e})")
    worst = max(max(c["global"]["rel"], c["patches"]["rel"]) for c in cases)
    report = {
        "encoder": name,
        "family": config.family,
        "ckpt": str(Path(ckpt).absolute()),
        "src": str(Path(src).absolute()),
        "dtype": "float32",
        "matmul_precision": "highest",
        "metric": "rel = ||flax - torch||_2 / ||torch||_2 over the whole tensor; max_abs = max |flax - torch|",
        "tolerance_rel": tolerance,
        "worst_rel": worst,
        "passed": bool(worst <= tolerance),
        "seed": seed,
        "cases": cases,
        "versions": versions(),
        "checked_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path = Path(out_file) if out_file else Path(ckpt) / PARITY_FILE
    path.write_text(json.dumps(report, indent=2) + "\n")
    log(f"parity {'PASSED' if report['passed'] else 'FAILED'}: worst relative error {worst:.2e} "
        f"(tolerance {tolerance:.0e}) -> {path}")
    return report
