"""Pneumothorax segmentation with the custom cross-attention segmenter on SIIM-ACR positives.

    python -m jaxprobe.run --config configs/ptx_custom.py [--config.data.root=/data/siim]
"""
from jaxprobe.config import module_beside

base = module_beside(__file__, "common").base


def get_config(arg=None):
    return base("ptx_custom", source="siim", task="segmentation", target="pneumothorax", title="pneumothorax segmentation",
                head="custom_seg", metrics=("dice", "iou"), arg=arg)
