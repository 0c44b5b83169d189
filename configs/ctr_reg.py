"""Cardiothoracic-ratio regression with a linear probe (MSE) on the global embedding.

    python -m jaxprobe.run --config configs/ctr_reg.py [--config.data.nih_root=... --config.data.chexmask_csv=...]
"""
from common import base  # configs/ is on sys.path while jaxprobe loads a config file


def get_config():
    return base("ctr_reg", source="cardiomegaly", task="CTR regression", scenario="linear probe",
                head="linear", target="ctr", metrics=("r2", "mse"))
