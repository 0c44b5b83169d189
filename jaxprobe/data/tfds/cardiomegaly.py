"""``cxr_cardiomegaly``: labelled chest radiographs joined with CheXmask heart and lung masks, with CTR."""
from __future__ import annotations

import dataclasses
import os

from ..cardiomegaly import NIH_DATA_ENTRY_FILES, SOURCE, cardiomegaly_records, nih_cardiomegaly_records
from ..errors import DataError
from ..synth import make_cardiomegaly
from .base import PreparedBuilder, PreparedConfig

CHEXMASK_NIH_FILES = ("ChestX-Ray8.csv", "ChestX-Ray8.csv.gz")
MANIFEST_FILES = ("manifest.csv",)
MANIFEST_CHEXMASK_FILES = ("chexmask.csv", "chexmask.csv.gz")


@dataclasses.dataclass(eq=False)
class CardiomegalyConfig(PreparedConfig):
    min_dice: float = 0.7  # keep CheXmask rows with Dice RCA (Mean) >= this (the CheXmask authors' advice)
    views: tuple[str, ...] = ("PA",)  # view positions kept (the paper's cohort is PA); () keeps every view


class CxrCardiomegaly(PreparedBuilder):
    """Chest radiographs with a cardiomegaly label and CheXmask heart, left- and right-lung masks.

    The study's cardiomegaly cohort is private; this is its public stand-in (NIH ChestX-ray14 labels joined
    with CheXmask, or any manifest in the same form). Each example: the decoded 8-bit image at its native
    size, the three masks, label (1 = cardiomegaly), the cardiothoracic ratio from the masks (heart width over
    the width of heart and lungs), patient id, image id and the image's path. Splits train/val/test are
    patient-level (see the dataset's metadata).
    """

    CONFIG_CLASS = CardiomegalyConfig
    SOURCE = SOURCE
    LABEL_NAMES = ("no_cardiomegaly", "cardiomegaly")
    MASK_NAMES = ("heart", "left_lung", "right_lung")
    HAS_CTR = True
    HOMEPAGE = "https://physionet.org/content/chexmask-cxr-segmentation-data/"
    CITATION = ("Gaggion N, Mosquera C, Mansilla L, et al. CheXmask: a large-scale dataset of anatomical "
                "segmentation masks for multi-center chest x-ray images. Scientific Data 11, 511 (2024). "
                "Wang X, Peng Y, Lu L, et al. ChestX-ray8: hospital-scale chest X-ray database and benchmarks. "
                "CVPR 2017.")
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Put one of two layouts in the manual directory (--manual-dir DIR, or
    download_config=tfds.download.DownloadConfig(manual_dir=DIR)):

    1. NIH ChestX-ray14 + CheXmask (https://nihcc.app.box.com/v/ChestXray-NIHCC and PhysioNet
       chexmask-cxr-segmentation-data):
           DIR/Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv)   labels: "Cardiomegaly" in Finding Labels
           DIR/images_001/images/*.png ... (any nesting below DIR)  the PNGs
           DIR/.../ChestX-Ray8.csv (or .csv.gz)                     CheXmask masks for ChestX-ray8; if several
                                                                    copies exist, the one under
                                                                    OriginalResolution/ is used
    2. Any labelled set, as a manifest:
           DIR/manifest.csv     columns image_id, path (relative to DIR or absolute), patient_id, cardiomegaly (0/1),
                                and view (PA, AP, ...; needed unless the config's views is empty)
           DIR/chexmask.csv     CheXmask's format for those images (or chexmask.csv.gz)

    Rows below the CheXmask quality cut (Dice RCA (Mean) < 0.7 by default), images without masks and
    CheXmask sizes that are the image's transposed are listed in the dataset's left_out.csv.
    """
    BUILDER_CONFIGS = [
        CardiomegalyConfig(name="default", description="Manual download, patient-level split 0.72/0.08/0.2 seed 0"),
        CardiomegalyConfig(name="synthetic", synthetic=True,
                           description="Synthetic phantoms (jaxprobe.data.synth), patient-level split 0.72/0.08/0.2 "
                                       "seed 0"),
    ]

    def _source_records(self, dl_manager, skipped_file: str):
        config = self.builder_config
        options = dict(min_dice=config.min_dice, on_error=self._on_error, skipped_file=skipped_file,
                       views=tuple(config.views))
        if config.synthetic:
            folder = self._synthetic_dir(dl_manager, lambda out: make_cardiomegaly(
                out, n=config.synthetic_n, seed=config.synthetic_seed, size=config.synthetic_size))
            root = os.path.join(folder, "cardiomegaly")
            return cardiomegaly_records(os.path.join(root, "manifest.csv"), os.path.join(root, "chexmask.csv"),
                                        **options), root
        root = os.fspath(dl_manager.manual_dir)
        manifest = _first_existing(root, MANIFEST_FILES)
        if manifest is not None:
            chexmask = _first_existing(root, MANIFEST_CHEXMASK_FILES)
            if chexmask is None:
                raise DataError(root, f"{manifest} found but no CheXmask table beside it; expected one of "
                                      f"{list(MANIFEST_CHEXMASK_FILES)}")
            return cardiomegaly_records(manifest, chexmask, **options), root
        if _first_existing(root, NIH_DATA_ENTRY_FILES) is None:
            raise DataError(root, f"neither a manifest ({list(MANIFEST_FILES)}) nor NIH labels "
                                  f"({list(NIH_DATA_ENTRY_FILES)}) in the manual directory; see the "
                                  "MANUAL_DOWNLOAD_INSTRUCTIONS of cxr_cardiomegaly")
        return nih_cardiomegaly_records(root, find_nih_chexmask(root), **options), root


def _first_existing(root: str, names) -> str | None:
    for name in names:
        if os.path.isfile(os.path.join(root, name)):
            return os.path.join(root, name)
    return None


def find_nih_chexmask(root: str) -> str:
    """CheXmask's ChestX-Ray8 table anywhere under root; the OriginalResolution copy when there are several."""
    found = sorted(os.path.join(d, n) for d, _, names in os.walk(root) for n in names if n in CHEXMASK_NIH_FILES)
    if not found:
        raise DataError(root, f"no CheXmask table {list(CHEXMASK_NIH_FILES)} under the manual directory")
    if len(found) > 1:
        original = [p for p in found if "OriginalResolution" in p.split(os.sep)]
        if len(original) != 1:
            raise DataError(root, f"several CheXmask tables {found}; keep one (OriginalResolution preferred)")
        return original[0]
    return found[0]
