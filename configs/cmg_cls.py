"""Cardiomegaly classification with a linear probe on the global embedding.

    python -m jaxprobe.run --config configs/cmg_cls.py [--config.data.nih_root=... --config.data.chexmask_csv=...]
"""
from jaxprobe.config import module_beside

base = module_beside(__file__, "common").base


def get_config(arg=None):
    return base("cmg_cls", source="cardiomegaly", task="classification", target="label", title="cardiomegaly classification",
                head="linear", metrics=("auroc", "auprc"), arg=arg)
