"""What a family reader extracts from the user's original files: architecture, spec, tensors and where they came from."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxprobe.encoders.spec import EncoderSpec
from jaxprobe.encoders.config import ViTConfig


@dataclasses.dataclass
class Source:
    name: str  # the registry entry it is converted as
    config: ViTConfig
    spec: EncoderSpec
    state_dict: dict[str, np.ndarray]
    weight_files: list[Path]
    spec_source: str  # where the preprocessing values came from
