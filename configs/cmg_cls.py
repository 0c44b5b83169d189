"""Cardiomegaly classification with a linear probe on the global embedding.

    python -m jaxprobe.run --config configs/cmg_cls.py [--config.data.nih_root=... --config.data.chexmask_csv=...]
"""
from common import base  # configs/ is on sys.path while jaxprobe loads a config file


def get_config():
    return base("cmg_cls", source="cardiomegaly", task="cardiomegaly classification", scenario="linear probe",
                head="linear", target="label", metrics=("auroc", "auprc"))
