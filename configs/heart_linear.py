"""Heart segmentation with the linear (1x1 conv) probe on the cardiomegaly cohort (CheXmask heart masks).

    python -m jaxprobe.run --config configs/heart_linear.py [--config.data.nih_root=... --config.data.chexmask_csv=...]
"""
from common import base  # configs/ is on sys.path while jaxprobe loads a config file


def get_config():
    return base("heart_linear", source="cardiomegaly", task="heart segmentation", scenario="linear probe",
                head="linear_seg", target="heart", metrics=("dice", "iou"))
