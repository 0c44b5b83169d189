"""``siim_acr_pneumothorax``: the SIIM-ACR Pneumothorax DICOMs and RLE masks as a prepared TFDS dataset."""
from __future__ import annotations

import dataclasses
import os

from ..siim import SOURCE, siim_records
from ..synth import make_siim
from .base import PreparedBuilder, PreparedConfig


@dataclasses.dataclass(eq=False)
class SiimConfig(PreparedConfig):
    """SIIM-ACR variants; the synthetic ones also say which fraction of the phantom films are positive."""

    synthetic_positive_fraction: float = 0.5


class SiimAcrPneumothorax(PreparedBuilder):
    """SIIM-ACR Pneumothorax Segmentation (Kaggle 2019): chest radiographs with pneumothorax masks.

    Each example: the decoded 8-bit image at its native size, the pneumothorax mask (empty for a negative),
    label (1 = pneumothorax), patient id (DICOM PatientID), image id (SOPInstanceUID) and the DICOM's path.
    Splits train/val/test are patient-level (see the dataset's metadata for seed and fractions).
    """

    SOURCE = SOURCE
    LABEL_NAMES = ("no_pneumothorax", "pneumothorax")
    MASK_NAMES = ("pneumothorax",)
    HOMEPAGE = "https://www.kaggle.com/c/siim-acr-pneumothorax-segmentation"
    CITATION = ("Zawacki A, Wu C, Shih G, et al. SIIM-ACR Pneumothorax Segmentation. Kaggle, 2019. "
                "https://kaggle.com/competitions/siim-acr-pneumothorax-segmentation")
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download the SIIM-ACR Pneumothorax Segmentation training data (Kaggle competition
    "siim-acr-pneumothorax-segmentation", or a re-host that keeps its DICOM layout) and place it in the manual
    directory (--manual-dir DIR, or download_config=tfds.download.DownloadConfig(manual_dir=DIR)):

        DIR/train-rle.csv                   stage 1 labels (columns ImageId, EncodedPixels), or
        DIR/stage_2_train.csv               the stage 2 labels (give only one of the two)
        DIR/dicom-images-train/<study>/<series>/<SOPInstanceUID>.dcm

    Any nesting below DIR works: the tree is walked and DICOMs are matched to labels by file name.
    DICOMs without a label (e.g. dicom-images-test/) and labels without a DICOM are listed in the
    dataset's left_out.csv.
    """
    BUILDER_CONFIGS = [
        SiimConfig(name="default", description="Manual download, patient-level split 0.72/0.08/0.2 seed 0"),
        SiimConfig(name="synthetic", synthetic=True, description="Synthetic phantoms (jaxprobe.data.synth), "
                                                                     "patient-level split 0.72/0.08/0.2 seed 0"),
    ]

    CONFIG_CLASS = SiimConfig

    def _source_records(self, dl_manager, skipped_file: str):
        config = self.builder_config
        if config.synthetic:
            folder = self._synthetic_dir(dl_manager, lambda out: make_siim(
                out, n=config.synthetic_n, seed=config.synthetic_seed, size=config.synthetic_size,
                positive_fraction=config.synthetic_positive_fraction))
            root = os.path.join(folder, "siim")
        else:
            root = os.fspath(dl_manager.manual_dir)
        records = siim_records(root, on_error=self._on_error, skipped_file=skipped_file)
        return records, root


__all__ = ["SiimAcrPneumothorax"]
