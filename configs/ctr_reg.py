"""Cardiothoracic-ratio regression with a linear probe (MSE) on the global embedding.

    python -m jaxprobe.run --config configs/ctr_reg.py [--config.data.nih_root=... --config.data.chexmask_csv=...]
"""
from jaxprobe.config import module_beside

base = module_beside(__file__, "common").base


def get_config(arg=None):
    return base("ctr_reg", source="cardiomegaly", task="regression", target="ctr", title="CTR regression",
                head="linear", metrics=("r2", "mse"), arg=arg)
