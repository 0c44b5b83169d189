"""Pneumothorax segmentation with the linear (1x1 conv) probe on SIIM-ACR positives.

    python -m jaxprobe.run --config configs/ptx_linear.py [--config.data.root=/data/siim]
"""
from jaxprobe.config import module_beside

base = module_beside(__file__, "common").base


def get_config(arg=None):
    return base("ptx_linear", source="siim", task="segmentation", target="pneumothorax", title="pneumothorax segmentation",
                head="linear_seg", metrics=("dice", "iou"), arg=arg)
