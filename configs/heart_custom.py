"""Heart segmentation with the custom cross-attention segmenter on the cardiomegaly cohort.

    python -m jaxprobe.run --config configs/heart_custom.py [--config.data.nih_root=... --config.data.chexmask_csv=...]
"""
from jaxprobe.config import module_beside

base = module_beside(__file__, "common").base


def get_config(arg=None):
    return base("heart_custom", source="cardiomegaly", task="segmentation", target="heart", title="heart segmentation",
                head="custom_seg", metrics=("dice", "iou"), arg=arg)
