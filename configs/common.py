"""Shared defaults of every analysis: the paper's training and statistics settings, the three encoders, and the
embedded default (synthetic phantoms, reduced random encoders) used when no data root or checkpoint is given.

Not run directly; each analysis file calls ``base(...)`` with its task and target. Override anything on the
command line, e.g. ``--config.data.root=/data/siim --config.encoders.rad_dino.checkpoint=/ckpts/rad_dino``.
The config argument picks the profile: ``configs/ptx_custom.py`` ("auto": the embedded default's reductions
when no data root is given or an encoder has no checkpoint), ``configs/ptx_custom.py:demo`` or ``:full``.
"""
from ml_collections import ConfigDict

from jaxprobe.config import profile_arg
from jaxprobe.encoders.registry import STUDY_NAMES


def encoder_block(checkpoint: str = "") -> ConfigDict:
    """The settings of one encoder of an analysis (``c.encoders.<name> = encoder_block()`` adds a registered one)."""
    e = ConfigDict()
    e.checkpoint = checkpoint  # a converted folder, or an original one (converted on the fly, parity report kept)
    e.input_size = 0  # 0: the checkpoint's own
    return e


def base(analysis: str, *, source: str, task: str, target: str, title: str, head: str, metrics: tuple,
         arg: str | None = None) -> ConfigDict:
    c = ConfigDict()
    c.analysis = analysis
    c.task = task  # "segmentation" | "classification" | "regression" (jaxprobe.tasks)
    c.title = title  # Table 2 row label, e.g. "pneumothorax segmentation"
    c.profile = profile_arg(arg)  # "auto" | "demo" | "full" (see the module docstring)
    c.workdir = f"runs/{analysis}"  # --workdir overrides
    c.cache_dir = "~/.cache/jaxprobe"  # synthetic data, converted checkpoints, embedding stores
    c.seed = 0

    c.data = ConfigDict()
    c.data.source = source  # "siim" | "cardiomegaly"
    c.data.root = ""  # SIIM: folder with dicom-images-train/ and the RLE CSV. Empty: synthetic phantoms
    c.data.csv = ""  # SIIM RLE CSV (default: train-rle.csv or stage_2_train.csv under root)
    c.data.manifest = ""  # cardiomegaly: manifest CSV (image_id,path,patient_id,cardiomegaly)
    c.data.nih_root = ""  # cardiomegaly: NIH ChestX-ray14 folder with Data_Entry_2017.csv (instead of a manifest)
    c.data.chexmask_csv = ""  # cardiomegaly: CheXmask CSV (e.g. OriginalResolution/ChestX-Ray8.csv.gz)
    c.data.min_dice = 0.7  # CheXmask quality filter: Dice RCA (Mean) >= this
    # Read images from a prepared TFDS dataset (decoded once, in the cache; built on first use) instead of the
    # original files. Its splits are stored in the dataset; the balanced set is drawn within each split.
    c.data.prepared = False
    c.data.on_error = "raise"  # "raise" | "skip" (bad files listed in the work directory)
    c.data.split_file = ""  # CSV image_id,split replacing the seeded split
    c.data.split_fractions = (0.72, 0.08, 0.2)
    c.data.split_seed = 0
    # Classification on all positives and as many seeded negatives (SIIM-ACR, as the study); False keeps every image.
    c.data.balance = source == "siim"
    c.data.balance_seed = 0  # which negatives join the balanced classification set
    c.data.synthetic = ConfigDict({"n": 160, "size": 256, "seed": 0})

    c.target = target  # SIIM: "pneumothorax" (mask) | "label"; cardiomegaly: "heart" (mask) | "label" | "ctr"

    c.encoders = ConfigDict()
    c.encoders.names = STUDY_NAMES
    for name in STUDY_NAMES:
        c.encoders[name] = encoder_block()
    # Sizes of the randomly initialised encoders used when no checkpoint is given (the embedded default keeps
    # the patch and input sizes of the real models and shrinks depth and width so a laptop CPU copes).
    c.encoders.random = ConfigDict({"width": 96, "depth": 2, "num_heads": 2, "seed": 0})

    c.embed = ConfigDict({"batch_size": 16, "chunk_size": 128, "workers": 4, "dtype": "float32"})

    c.head = ConfigDict()
    c.head.name = head  # "linear" | "linear_seg" | "custom_seg"
    # The custom segmenter's internal sizes (paper: 512/256 convs at 64x64, 8 heads, 256-d attention).
    c.head.custom = ConfigDict({"widths": (512, 256), "refine_size": 64, "num_heads": 8, "attention_dim": 256})

    c.train = ConfigDict()
    c.train.learning_rate = 1e-4
    c.train.weight_decay = 1e-2
    c.train.batch_size = 16
    c.train.eval_batch_size = 16
    c.train.patience = 10
    c.train.min_delta = 1e-4
    c.train.max_epochs = 100
    c.train.seeds = (0,)
    c.train.shuffle_seed = 0
    c.train.data_on_device = False

    c.stats = ConfigDict()
    c.stats.metrics = metrics
    c.stats.n_resamples = 10_000
    c.stats.seed = 0
    c.stats.ci_level = 0.95
    c.stats.point_estimate = "full_sample"  # or "bootstrap_mean" (the authors' convention)
    c.stats.pr_auc = "average_precision"  # or "trapezoid" (the authors' auc(recall, precision))
    c.stats.empty_mask_rule = "zero"  # Dice/IoU of two empty masks: "zero" (sklearn) | "one" | "exclude"
    c.stats.mask_threshold = 0.5
    c.stats.stratified = True  # resample AUROC/AUPRC within each class
    c.stats.alpha = 0.05  # Bonferroni over the encoder pairs: 0.05 / 3 = 0.0167

    c.report = ConfigDict({"overlays": 4})

    # The embedded default (profile "demo"): each value here replaces the key of the same path (demo.train.max_epochs
    # -> train.max_epochs) unless that key is set on the command line. The full-size custom head is ~38 s per step
    # on 2 CPU cores.
    c.demo = ConfigDict()
    c.demo.train = ConfigDict({"max_epochs": 15})
    c.demo.head = ConfigDict({"custom": {"widths": (32, 16), "refine_size": 32, "num_heads": 2, "attention_dim": 16}})
    return c
