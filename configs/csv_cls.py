"""Your own cohort from one CSV (jaxprobe.data.csvsource): binary classification with a linear probe.

    python -m jaxprobe.run --config configs/csv_cls.py --config.data.table.path=/data/cohort.csv \
        [--config.data.table.label=my_label_column --config.data.table.patient=patient_column]

Regression: ``--config.task=regression --config.target=value --config.stats.metrics=r2,mse``; segmentation:
``--config.task=segmentation --config.target=mask --config.head.name=linear_seg --config.stats.metrics=dice,iou``.
Without a path it runs on a synthetic phantom cohort written as PNG + CSV.
"""
from jaxprobe.config import module_beside

base = module_beside(__file__, "common").base


def get_config(arg=None):
    return base("csv_cls", source="csv", task="classification", target="label", title="classification (own cohort)",
                head="linear", metrics=("auroc", "auprc"), arg=arg)
