"""Shared defaults of every analysis: the paper's training and statistics settings, the three encoders, and the
embedded default (synthetic phantoms, reduced random encoders) used when no data root or checkpoint is given.

Not run directly; each analysis file calls ``base(...)`` with its task and target. Override anything on the
command line, e.g. ``--config.data.root=/data/siim --config.encoders.rad_dino.checkpoint=/ckpts/rad_dino``.
The config argument picks the profile: ``configs/ptx_custom.py`` ("auto": the embedded default's reductions
when no data root is given or an encoder has no checkpoint), ``configs/ptx_custom.py:demo`` or ``:full``.
"""
from ml_collections import ConfigDict

from jaxprobe.config import profile_arg, user_cache_root
from jaxprobe.encoders.registry import STUDY_NAMES


def encoder_block(checkpoint: str = "", family: str = "", display_name: str = "") -> ConfigDict:
    """The settings of one encoder of an analysis: ``c.encoders.<name> = encoder_block()`` adds a registered
    encoder; a name the registry does not know is declared by its ``family`` and ``checkpoint`` alone."""
    e = ConfigDict()
    # a converted folder, an original one (converted on the fly, parity report kept) or a Hugging Face hub id;
    # empty: random weights (registered encoders only)
    e.checkpoint = checkpoint
    e.input_size = 0  # 0: the checkpoint's own
    e.family = family  # "": the registry entry's; for a config-declared encoder: dinov2 | dinov3 | siglip | clip | open_clip | timm_vit
    e.display_name = display_name  # "": the registry entry's (or the name)
    return e


def base(analysis: str, *, source: str, task: str, target: str, title: str, head: str, metrics: tuple,
         arg: str | None = None) -> ConfigDict:
    c = ConfigDict()
    c.analysis = analysis
    c.task = task  # "segmentation" | "classification" | "regression" (jaxprobe.tasks)
    c.title = title  # Table 2 row label, e.g. "pneumothorax segmentation"
    c.profile = profile_arg(arg)  # "auto" | "demo" | "full" (see the module docstring)
    # "paper": the paper's stated protocol (and jaxprobe's documented choices where it is silent); "authors":
    # the values of the authors' public code, from the ``authors`` block below (README: fidelity table)
    c.protocol = "paper"
    c.workdir = f"runs/{analysis}"  # --workdir overrides
    # synthetic data, converted checkpoints, embedding stores: $XDG_CACHE_HOME/jaxprobe, else ~/.cache/jaxprobe
    c.cache_dir = str(user_cache_root())
    c.seed = 0

    c.data = ConfigDict()
    c.data.source = source  # "siim" | "cardiomegaly" | "csv" (your own cohort, data.table)
    c.data.root = ""  # SIIM: folder with dicom-images-train/ and the RLE CSV. Empty: synthetic phantoms
    c.data.csv = ""  # SIIM RLE CSV (default: train-rle.csv or stage_2_train.csv under root)
    c.data.manifest = ""  # cardiomegaly: manifest CSV (image_id,path,patient_id,cardiomegaly)
    c.data.nih_root = ""  # cardiomegaly: NIH ChestX-ray14 folder with Data_Entry_2017.csv (instead of a manifest)
    c.data.chexmask_csv = ""  # cardiomegaly: CheXmask CSV (e.g. OriginalResolution/ChestX-Ray8.csv.gz)
    # data.source "csv": one row per image (jaxprobe.data.csvsource); the values are the column names ("": none)
    c.data.table = ConfigDict({
        "path": "",  # the cohort CSV; empty: a synthetic phantom cohort (PNG images, heart-mask PNGs, label, CTR)
        "image": "image",  # image file (DICOM, PNG, JPEG), relative to the CSV's folder or absolute
        "patient": "patient_id",
        "id": "",  # "": the image path relative to the CSV's folder
        "label": "label",  # 0/1 (target "label")
        "value": "value",  # a number (target "value")
        "mask": "mask",  # a mask image path or RLE (target "mask"); empty cell = empty mask
        "mask_format": "image",  # "image" | "siim_rle" | "chexmask_rle"
        "split": "",  # a train/val/test column replacing the seeded patient-level split
    })
    c.data.min_dice = 0.7  # CheXmask quality filter: Dice RCA (Mean) >= this
    # Read images from a prepared TFDS dataset (decoded once, in the cache; built on first use) instead of the
    # original files. Its splits are stored in the dataset; the balanced set is drawn within each split.
    c.data.prepared = False
    # 8-bit conversion: "range" maps the data's nominal range after the DICOM VOI window/LUT (jaxprobe), "minmax"
    # stretches each image's own min..max (the authors' code)
    c.data.scaling = "range"
    # Masks onto the encoder's grid: resampled as a 0/255 image, kept where >= threshold x 255 (jaxprobe: bilinear
    # at 0.5; the authors' code: bicubic, min-max scaled, > 0.66)
    c.data.mask_resample = "bilinear"
    c.data.mask_threshold = 0.5
    c.data.on_error = "raise"  # "raise" | "skip" (bad files listed in the work directory)
    c.data.split_file = ""  # CSV image_id,split replacing the seeded split
    c.data.split_fractions = (0.72, 0.08, 0.2)
    c.data.split_seed = 0
    # A balanced cohort: every case of the rarer label and as many seeded others (SIIM-ACR classification and the
    # cardiomegaly cohort, as the study: 2,379 + 2,379 and 15,000 + 15,000); False keeps every image.
    c.data.balance = source in ("siim", "cardiomegaly")
    # Cardiomegaly: the view positions kept (NIH's "View Position", a manifest's "view" column); the paper's
    # cohort is PA only. () keeps every view.
    c.data.views = ("PA",) if source == "cardiomegaly" else ()
    c.data.balance_seed = 0  # which negatives join the balanced classification set
    # The embedded default's phantoms: images per set, SIIM film size, seed, fraction of SIIM films with a
    # pneumothorax (segmentation trains on the positives only)
    c.data.synthetic = ConfigDict({"n": 160, "size": 256, "seed": 0, "positive_fraction": 0.5})

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
    # The linear segmentation probe: one logit (paper) or a softmax pair (classes=2, the authors' code), upsampled
    # with align_corners False (paper's PyTorch default) or True (the authors' code).
    c.head.linear_seg = ConfigDict({"classes": 1, "align_corners": False})
    # The custom segmenter's internal sizes (paper: 512/256 convs at 64x64, 8 heads, 256-d attention).
    c.head.custom = ConfigDict({"widths": (512, 256), "refine_size": 64, "num_heads": 8, "attention_dim": 256})

    c.train = ConfigDict()  # every key is a field of jaxprobe.train.TrainConfig
    c.train.learning_rate = 1e-4  # paper
    c.train.learning_rates = ()  # a grid of rates instead (one member each, zipped with the seeds)
    c.train.weight_decay = 1e-2  # AdamW, the authors' code
    c.train.adam_b1 = 0.9
    c.train.adam_b2 = 0.999
    c.train.adam_eps = 1e-8
    c.train.batch_size = 16  # paper
    c.train.eval_batch_size = 16
    c.train.patience = 10  # paper (the authors' code: 5)
    c.train.min_delta = 1e-4  # paper; drives the patience counter, the kept weights are the lowest val loss
    c.train.max_epochs = 500  # the authors' cap; the paper states none
    c.train.seeds = (0,)
    c.train.shuffle_seed = 0
    c.train.data_on_device = False
    c.train.class_weights = (1.0, 1.0)  # (negative, positive) weights of the binary loss
    c.train.clip_grad_norm = 0.0  # 0: none (the authors' code: 1.0)
    c.train.drop_last = False  # the authors' training DataLoader drops the last partial batch
    c.train.checkpoint_every = 1  # epochs between resumable checkpoints (the last epoch is always saved)

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
    # "paired": one resample set shared by every encoder (all are scored on one test set; more power);
    # "unpaired": independent resamples per encoder, what the paper's "two-sample bootstrapping test" did
    c.stats.test = "paired"
    # Classification at an operating point chosen on the validation set: "youden" (max sensitivity + specificity
    # - 1) or "sensitivity" (the highest threshold reaching operating_point.sensitivity on the validation set)
    c.stats.operating_point = ConfigDict({"rule": "youden", "sensitivity": 0.9})

    c.report = ConfigDict({"overlays": 4})
    # TensorBoard event files of each head's training in train/<encoder>/tensorboard/ (needs the tensorboard
    # extra: tensorboardX, no TensorFlow); history.csv is written either way
    c.log = ConfigDict({"tensorboard": False})

    # Protocol "authors": each value here replaces the key of the same path unless set on the command line; these
    # are where f10409/Medical-Foundation-Model-Evaluation differs from the paper's text or from jaxprobe.
    c.authors = ConfigDict()
    # (the cap, 500, is already the default; on the embedded default the demo's cap stays)
    c.authors.train = ConfigDict({"patience": 5, "clip_grad_norm": 1.0, "drop_last": True})
    c.authors.data = ConfigDict({"scaling": "minmax"})
    c.authors.stats = ConfigDict({"pr_auc": "trapezoid", "point_estimate": "bootstrap_mean"})
    if task == "segmentation":
        c.authors.data.mask_resample, c.authors.data.mask_threshold = "bicubic", 0.66
    if head == "linear_seg":  # a 2-class probe with class-weighted cross-entropy ([1, 5] pneumothorax, [1, 1] heart)
        c.authors.head = ConfigDict({"linear_seg": {"classes": 2, "align_corners": True}})
        c.authors.train.class_weights = (1.0, 5.0) if target == "pneumothorax" else (1.0, 1.0)

    # The embedded default (profile "demo"): each value here replaces the key of the same path (demo.train.max_epochs
    # -> train.max_epochs) unless that key is set on the command line. The full-size custom head is ~38 s per step
    # on 2 CPU cores. Random reduced encoders give weak, noisy features and the phantom sets are small (~60
    # training cases): a higher learning rate and a longer patience let every head learn within ~3 minutes
    # (README: what the default run prints).
    c.demo = ConfigDict()
    c.demo.train = ConfigDict({"max_epochs": 80 if head == "custom_seg" else 200, "patience": 20,
                               "checkpoint_every": 20, "learning_rate": 1e-2 if head == "custom_seg" else 3e-2})
    if head == "linear_seg" and target == "pneumothorax":  # a small foreground: weight it as the authors do
        c.demo.train.class_weights = (1.0, 5.0)
    c.demo.head = ConfigDict({"custom": {"widths": (32, 16), "refine_size": 32, "num_heads": 2, "attention_dim": 16}})
    return c
