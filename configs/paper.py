"""All seven analyses of the study, one after another, and one combined report (Table 2, Table S1, figures).

    python -m jaxprobe.run --config configs/paper.py [--config.siim_root=/data/siim --config.nih_root=/data/nih
        --config.chexmask_csv=/data/chexmask/OriginalResolution/ChestX-Ray8.csv.gz
        --config.checkpoints.rad_dino=/ckpts/rad_dino ...] [--each.KEY=VALUE ...]

Each analysis keeps its own work directory under ``workdir`` (so each can be re-run alone) and its own
settings from its config file; the values here are applied to all seven, and so is any ``--each.KEY=VALUE``
(an alias of ``--config.each.KEY=VALUE``, e.g. ``--each.train.seeds=0,1,2``). The config argument is passed
on to every analysis (``configs/paper.py:full`` loads ``configs/ptx_linear.py:full`` and so on).
"""
from ml_collections import ConfigDict

from jaxprobe.config import module_beside, profile_arg
from jaxprobe.encoders.registry import STUDY_NAMES

common = module_beside(__file__, "common")

ANALYSES = ("ptx_linear", "ptx_custom", "ptx_cls", "heart_linear", "heart_custom", "cmg_cls", "ctr_reg")


def get_config(arg=None):
    c = ConfigDict()
    c.analysis = "paper"
    c.analyses = ANALYSES
    c.profile = profile_arg(arg)
    c.workdir = "runs/paper"
    c.cache_dir = ""  # empty: each analysis's own ($XDG_CACHE_HOME/jaxprobe, else ~/.cache/jaxprobe)
    c.siim_root = ""  # empty: synthetic phantoms
    c.siim_csv = ""
    c.nih_root = ""
    c.manifest = ""
    c.chexmask_csv = ""
    c.checkpoints = ConfigDict({name: "" for name in STUDY_NAMES})
    c.n_resamples = 10_000
    c.train_seeds = (0,)
    # The keys --each.KEY=VALUE may set, with their types: the shared analysis settings. Only the keys given on
    # the command line are applied; the values here are never used.
    c.each = common.base("each", source="siim", task="segmentation", target="pneumothorax", title="",
                         head="linear_seg", metrics=("dice", "iou"))
    return c
