"""Pneumothorax classification with a linear probe on the balanced SIIM-ACR set (all positives + as many negatives).

    python -m jaxprobe.run --config configs/ptx_cls.py [--config.data.root=/data/siim]
"""
from jaxprobe.config import module_beside

base = module_beside(__file__, "common").base


def get_config(arg=None):
    return base("ptx_cls", source="siim", task="classification", target="label", title="pneumothorax classification",
                head="linear", metrics=("auroc", "auprc"), arg=arg)
