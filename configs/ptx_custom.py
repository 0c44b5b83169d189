"""Pneumothorax segmentation with the custom cross-attention segmenter on SIIM-ACR positives.

    python -m jaxprobe.run --config configs/ptx_custom.py [--config.data.root=/data/siim]
"""
from common import base  # configs/ is on sys.path while jaxprobe loads a config file


def get_config():
    return base("ptx_custom", source="siim", task="pneumothorax segmentation", scenario="custom model",
                head="custom_seg", target="pneumothorax", metrics=("dice", "iou"))
