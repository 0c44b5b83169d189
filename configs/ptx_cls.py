"""Pneumothorax classification with a linear probe on the balanced SIIM-ACR set (all positives + as many negatives).

    python -m jaxprobe.run --config configs/ptx_cls.py [--config.data.root=/data/siim]
"""
from common import base  # configs/ is on sys.path while jaxprobe loads a config file


def get_config():
    return base("ptx_cls", source="siim", task="pneumothorax classification", scenario="linear probe",
                head="linear", target="label", metrics=("auroc", "auprc"))
