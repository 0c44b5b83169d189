"""Heart segmentation with the linear (1x1 conv) probe on the cardiomegaly cohort (CheXmask heart masks).

    python -m jaxprobe.run --config configs/heart_linear.py [--config.data.nih_root=... --config.data.chexmask_csv=...]
"""
from jaxprobe.config import module_beside

base = module_beside(__file__, "common").base


def get_config(arg=None):
    return base("heart_linear", source="cardiomegaly", task="segmentation", target="heart", title="heart segmentation",
                head="linear_seg", metrics=("dice", "iou"), arg=arg)
