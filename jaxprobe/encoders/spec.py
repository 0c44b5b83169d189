"""What an encoder expects as input and gives as output.

The spec travels with every converted checkpoint (``encoder.json``) and into every embedding store key, so
that a change in preprocessing can never reuse stale embeddings.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

ResizeRule = Literal["shortest_edge_center_crop", "direct"]


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    family: str  # "dinov2" | "siglip" | "timm_vit"
    input_size: int  # S: pixels fed to the encoder are [B, S, S, 3]
    patch_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: ResizeRule  # shortest edge to S then centre crop S x S, or direct resize to S x S
    global_dim: int  # D of the global embedding
    patch_dim: int  # C of the patch tokens
    resample: str = "bicubic"
    rescale: float = 1.0 / 255.0  # 8-bit input scaled to [0, 1] before normalisation

    @property
    def grid(self) -> int:
        """G: patch tokens form a G x G grid."""
        return self.input_size // self.patch_size

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["grid"] = self.grid
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderSpec":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields - {"grid"}
        if unknown:
            raise ValueError(f"EncoderSpec: unknown keys {sorted(unknown)}; expected {sorted(fields)}")
        kw = {k: v for k, v in d.items() if k in fields}
        for k in ("mean", "std"):
            kw[k] = tuple(float(x) for x in kw[k])
        return cls(**kw)
