"""Reading per-model prediction files for `python -m jaxprobe.stats` and matching them by case id.

Formats (one file or folder per model):

- classification / regression: CSV with columns ``case_id``, ``y_true``, ``score``;
- segmentation: CSV with ``case_id``, ``intersection``, ``pred_area``, ``true_area`` (pixel counts of the
  binarised masks), or a folder of PNG masks ``<case_id>.png`` scored against a folder of true masks.
  Predicted PNGs hold probabilities scaled to the integer range (255 = 1.0) unless ``mask_values="label"``
  (any nonzero pixel is foreground); true masks are foreground where nonzero.

Cases are put in sorted case-id order, so results do not depend on row order. Every model must cover the
same cases. A case missing from some files stops the run with the ids listed,
unless ``intersect=True``, which keeps the common cases and records how many were dropped.
"""
from __future__ import annotations

import csv
import dataclasses
import pathlib
from typing import Mapping

import numpy as np

from jaxprobe import metrics as M

SCORE_COLUMNS = ("case_id", "y_true", "score")
MASK_STAT_COLUMNS = ("case_id", "intersection", "pred_area", "true_area")


@dataclasses.dataclass
class LoadedPredictions:
    case_ids: list[str]
    y_true: np.ndarray | None
    predictions: dict[str, object]
    dropped: dict[str, list[str]]     # model -> its case ids left out because other files lack them

    def case_summary(self) -> dict:
        return {"n_matched": len(self.case_ids),
                "n_dropped_per_model": {m: len(ids) for m, ids in self.dropped.items()},
                "dropped_case_ids": {m: ids[:50] for m, ids in self.dropped.items() if ids}}

    def report_lines(self) -> list[str]:
        lines = [f"matched {len(self.case_ids)} cases across {len(self.predictions)} models"]
        lines += [f"  {m}: dropped {len(ids)} cases missing from other files (e.g. {ids[:5]})"
                  for m, ids in self.dropped.items() if ids]
        return lines


def _read_csv(path: pathlib.Path, columns, parse) -> dict[str, tuple]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prediction file not found")
    rows: dict[str, tuple] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in columns if c not in fields]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; expected {list(columns)}, found {fields}")
        for line_no, raw in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            case = row["case_id"]
            if not case:
                raise ValueError(f"{path}, line {line_no}: empty case_id")
            if case in rows:
                raise ValueError(f"{path}, line {line_no}: case_id {case!r} appears twice")
            try:
                rows[case] = tuple(parse(row[c]) for c in columns[1:])
            except ValueError as e:
                raise ValueError(f"{path}, line {line_no} (case {case!r}): {e}") from None
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def _finite(text: str) -> float:
    x = float(text)
    if not np.isfinite(x):
        raise ValueError(f"non-finite value {text!r}")
    return x


def _count(text: str) -> int:
    x = float(text)
    if not (np.isfinite(x) and x >= 0 and x == int(x)):
        raise ValueError(f"expected a non-negative whole pixel count, got {text!r}")
    return int(x)


def _read_png(path: pathlib.Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.mode == "1":
            return np.asarray(im, dtype=bool)
        if im.mode not in ("L", "I;16", "I"):
            raise ValueError(f"{path}: mask must be a single-channel PNG (mode 1, L or I;16), got mode {im.mode}")
        a = np.asarray(im)
    return a


def _pred_mask(path, mask_values: str, threshold: float) -> np.ndarray:
    a = _read_png(path)
    if a.dtype == bool:
        return a
    if mask_values == "label":
        return a > 0
    top = np.iinfo(a.dtype).max if a.dtype != np.int32 else 65535
    if a.max() == 1:
        raise ValueError(f"{path}: values are 0/1, which as probabilities (x/{top}) would be all background; "
                         "save masks as 0/255 or pass --mask-values label")
    return a / top > threshold


def _mask_folder_statistics(pred_dir: pathlib.Path, true_dir: pathlib.Path, threshold: float, mask_values: str,
                            intersect: bool):
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"{pred_dir}: not a folder of predicted masks")
    if not true_dir.is_dir():
        raise FileNotFoundError(f"{true_dir}: not a folder of true masks")
    unpredicted = sorted({p.stem for p in true_dir.glob("*.png")} - {p.stem for p in pred_dir.glob("*.png")})
    if unpredicted and not intersect:
        raise ValueError(f"{pred_dir}: no predicted mask for {len(unpredicted)} true masks in {true_dir}, "
                         f"e.g. {unpredicted[:5]}; pass --intersect to score only the predicted cases")
    rows = {}
    for path in sorted(pred_dir.glob("*.png")):
        true_path = true_dir / path.name
        if not true_path.is_file():
            raise FileNotFoundError(f"{true_path}: no true mask for predicted mask {path}")
        pred = _pred_mask(path, mask_values, threshold)
        true = _read_png(true_path) > 0
        if pred.shape != true.shape:
            raise ValueError(f"{path}: shape {pred.shape} differs from its true mask {true_path} {true.shape}")
        rows[path.stem] = (int(np.sum(pred & true)), int(np.sum(pred)), int(np.sum(true)))
    if not rows:
        raise ValueError(f"{pred_dir}: no .png masks")
    return rows


def load_predictions(kind: str, sources: Mapping[str, str], *, true_masks: str | None = None,
                     mask_threshold: float = 0.5, mask_values: str = "probability",
                     intersect: bool = False, shared_truth: bool = True) -> LoadedPredictions:
    """Read every model's file, match cases by id and check that the true values agree across files.

    ``shared_truth=False`` (masks): each model's true areas may differ, as when every encoder is scored on the
    ground truth resampled to its own input grid; the cases must still match."""
    per_model: dict[str, dict[str, tuple]] = {}
    for model, src in sources.items():
        path = pathlib.Path(src)
        if kind == "mask":
            if path.is_dir():
                if true_masks is None:
                    raise ValueError(f"{path}: mask folders need --true-masks (the folder of true masks)")
                per_model[model] = _mask_folder_statistics(path, pathlib.Path(true_masks), mask_threshold,
                                                           mask_values, intersect)
            else:
                per_model[model] = _read_csv(path, MASK_STAT_COLUMNS, _count)
        else:
            per_model[model] = _read_csv(path, SCORE_COLUMNS, _finite)

    common = set.intersection(*(set(rows) for rows in per_model.values()))
    dropped = {m: sorted(set(rows) - common) for m, rows in per_model.items()}
    if any(dropped.values()) and not intersect:
        details = "; ".join(f"{m} ({sources[m]}) has {len(ids)} cases the others lack, e.g. {ids[:5]}"
                            for m, ids in dropped.items() if ids)
        raise ValueError(f"prediction files cover different cases: {details}. "
                         "Fix the files or pass --intersect to use the common cases")
    if not common:
        raise ValueError("prediction files share no case ids")
    first_model = next(iter(per_model))
    # Sorted ids, so that the resamples (and every number) do not depend on the order of rows in the files.
    case_ids = sorted(common)

    truth_index = 0 if kind != "mask" else 2      # y_true, or true_area for masks
    reference = np.array([per_model[first_model][c][truth_index] for c in case_ids])
    for model, rows in (per_model.items() if shared_truth or kind != "mask" else ()):
        values = np.array([rows[c][truth_index] for c in case_ids])
        bad = np.flatnonzero(values != reference)
        if bad.size:
            what = "y_true" if kind != "mask" else "true_area"
            c = case_ids[bad[0]]
            raise ValueError(f"{what} of case {c!r} is {values[bad[0]]} in {sources[model]} but "
                             f"{reference[bad[0]]} in {sources[first_model]} ({bad.size} cases disagree)")

    if kind == "mask":
        predictions = {m: M.MaskStatistics.from_array(np.array([rows[c] for c in case_ids], np.int64))
                       for m, rows in per_model.items()}
        y_true = None
    else:
        predictions = {m: np.array([rows[c][1] for c in case_ids]) for m, rows in per_model.items()}
        y_true = reference if kind == "regression" else reference.astype(np.int64)
        if kind == "ranking" and not np.all(np.isin(reference, (0, 1))):
            raise ValueError(f"{sources[first_model]}: y_true must be 0/1 for {kind} metrics, "
                             f"found {np.unique(reference)[:10].tolist()}")
    return LoadedPredictions(case_ids, y_true, predictions, dropped)
