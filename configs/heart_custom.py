"""Heart segmentation with the custom cross-attention segmenter on the cardiomegaly cohort.

    python -m jaxprobe.run --config configs/heart_custom.py [--config.data.nih_root=... --config.data.chexmask_csv=...]
"""
from common import base  # configs/ is on sys.path while jaxprobe loads a config file


def get_config():
    return base("heart_custom", source="cardiomegaly", task="heart segmentation", scenario="custom model",
                head="custom_seg", target="heart", metrics=("dice", "iou"))
