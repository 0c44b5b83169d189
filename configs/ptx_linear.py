"""Pneumothorax segmentation with the linear (1x1 conv) probe on SIIM-ACR positives.

    python -m jaxprobe.run --config configs/ptx_linear.py [--config.data.root=/data/siim]
"""
from common import base  # configs/ is on sys.path while jaxprobe loads a config file


def get_config():
    return base("ptx_linear", source="siim", task="pneumothorax segmentation", scenario="linear probe",
                head="linear_seg", target="pneumothorax", metrics=("dice", "iou"))
