"""All seven analyses of the study, one after another, and one combined report (Table 2, Table S1, figures).

    python -m jaxprobe.run --config configs/paper.py [--config.siim_root=/data/siim --config.nih_root=/data/nih
        --config.chexmask_csv=/data/chexmask/OriginalResolution/ChestX-Ray8.csv.gz
        --config.checkpoints.rad_dino=/ckpts/rad_dino ...]

Each analysis keeps its own work directory under ``workdir`` (so each can be re-run alone) and its own
settings from its config file; the values here are applied to all seven, and so is any
``--each.KEY=VALUE`` (e.g. ``--each.train.seeds=0,1,2``).
"""
from ml_collections import ConfigDict

ANALYSES = ("ptx_linear", "ptx_custom", "ptx_cls", "heart_linear", "heart_custom", "cmg_cls", "ctr_reg")


def get_config():
    c = ConfigDict()
    c.analysis = "paper"
    c.analyses = ANALYSES
    c.workdir = "runs/paper"
    c.cache_dir = ""  # empty: each analysis's own (~/.cache/jaxprobe)
    c.siim_root = ""  # empty: synthetic phantoms
    c.siim_csv = ""
    c.nih_root = ""
    c.manifest = ""
    c.chexmask_csv = ""
    c.checkpoints = ConfigDict({"rad_dino": "", "chexagent": "", "biomedclip": ""})
    c.n_resamples = 10_000
    c.train_seeds = (0,)
    return c
