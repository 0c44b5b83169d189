"""The one home of prediction files: the layout of a run's ``predictions/`` folder, writing it, and reading it back.

A run's folder, per encoder (``encoder_dir``)::

    predictions/<encoder>/member<k>/segmentation.csv   case_id, intersection, pred_area, true_area (mask heads)
    predictions/<encoder>/member<k>/masks.npy          bool [n,S,S], rows in the CSV's order (mask heads, optional)
    predictions/<encoder>/member<k>/predictions.csv    case_id, y_true, score (scalar heads; score = probability
                                                       for "bce", the predicted value for "mse")
    predictions/<encoder>/member<k>/logits.npy         the raw outputs behind ``score`` (scalar heads)
    predictions/<encoder>/member<k>/validation.csv     case_id, y_true, score of the validation cases (classification:
                                                       the operating point's threshold is chosen on them)
    predictions/<encoder>/summary.json                 configuration, each member's training record, test loss and
                                                       headline metric (a first look; the statistics are the reference)
    predictions/<encoder>/head.json                    the set-up that produced them (head, training, encoder, store)

``load_predictions`` reads files of any source for ``python -m jaxprobe.stats`` (one file or folder per model):

- classification / regression: CSV with columns ``case_id``, ``y_true``, ``score``;
- segmentation: CSV with ``case_id``, ``intersection``, ``pred_area``, ``true_area`` (pixel counts of the
  binarised masks), or a folder of PNG masks ``<case_id>.png`` scored against a folder of true masks.
  Predicted PNGs hold probabilities scaled to the integer range (255 = 1.0) unless ``mask_values="label"``
  (any nonzero pixel is foreground); true masks are foreground where nonzero.

Cases are put in sorted case-id order, so results do not depend on row order. Every model must cover the
same cases. A case missing from some files stops the run with the ids listed,
unless ``intersect=True``, which keeps the common cases and records how many were dropped. A file that is
missing, malformed or disagrees with the others raises ``PredictionFileError`` (a ``ValueError``).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

import numpy as np

from jaxprobe import metrics as M
from jaxprobe.errors import PredictionFileError, read_json

if TYPE_CHECKING:  # the readers serve the statistics command, which should not have to load JAX
    from jaxprobe.train import FitResult, TestPredictions

SCORE_COLUMNS = ("case_id", "y_true", "score")
MASK_STAT_COLUMNS = ("case_id", "intersection", "pred_area", "true_area")


# ---------------------------------------------------------------------------------------------------- layout
def encoder_dir(workdir: str | pathlib.Path, encoder: str) -> pathlib.Path:
    return pathlib.Path(workdir) / "predictions" / encoder


def member_dir(workdir: str | pathlib.Path, encoder: str, member: int) -> pathlib.Path:
    return encoder_dir(workdir, encoder) / f"member{member}"


def scores_file(workdir: str | pathlib.Path, encoder: str, kind: str, member: int = 0) -> pathlib.Path:
    """The CSV of one member: ``segmentation.csv`` for metric kind "mask", else ``predictions.csv``."""
    return member_dir(workdir, encoder, member) / ("segmentation.csv" if kind == "mask" else "predictions.csv")


def masks_file(workdir: str | pathlib.Path, encoder: str, member: int = 0) -> pathlib.Path:
    return member_dir(workdir, encoder, member) / "masks.npy"


def logits_file(workdir: str | pathlib.Path, encoder: str, member: int = 0) -> pathlib.Path:
    return member_dir(workdir, encoder, member) / "logits.npy"


def validation_file(workdir: str | pathlib.Path, encoder: str, member: int = 0) -> pathlib.Path:
    return member_dir(workdir, encoder, member) / "validation.csv"


def summary_file(workdir: str | pathlib.Path, encoder: str) -> pathlib.Path:
    """Written last: its presence means the encoder's predictions are complete."""
    return encoder_dir(workdir, encoder) / "summary.json"


def head_file(workdir: str | pathlib.Path, encoder: str) -> pathlib.Path:
    return encoder_dir(workdir, encoder) / "head.json"


# ---------------------------------------------------------------------------------------------------- writing
class MaskFiles:
    """``predict``'s ``mask_sink``: each member's predicted masks into ``member<k>/masks.npy`` (bool [n,S,S], rows
    in the CSV's order) through memory maps, so no member's masks are ever held whole. A context manager; the
    files open at the first batch, which tells the number of members and the mask size."""

    def __init__(self, workdir: str | pathlib.Path, encoder: str, n_cases: int):
        self.workdir, self.encoder, self.n_cases = workdir, encoder, n_cases
        self.files: list[np.memmap] = []

    def __call__(self, start: int, masks: np.ndarray) -> None:
        if not self.files:
            for k in range(masks.shape[0]):
                path = masks_file(self.workdir, self.encoder, k)
                path.parent.mkdir(parents=True, exist_ok=True)
                self.files.append(np.lib.format.open_memmap(path, mode="w+", dtype=bool,
                                                            shape=(self.n_cases,) + masks.shape[2:]))
        for k, file in enumerate(self.files):
            file[start:start + masks.shape[1]] = masks[k]

    def close(self) -> None:
        for file in self.files:
            file.flush()
        self.files = []

    def __enter__(self) -> "MaskFiles":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write(workdir: str | pathlib.Path, encoder: str, result: "FitResult", test: "TestPredictions", *,
          empty_mask_rule: M.EmptyMaskRule) -> dict:
    """Write each member's CSV (and, for scalar heads, ``logits.npy``) and then ``summary.json``: the
    configuration, each member's training record, test loss and headline metric (mean Dice under
    ``empty_mask_rule``, AUROC or R², NaN where the test set leaves it undefined) and their spread. Returns the
    summary."""
    member_reports = []
    for k, training in enumerate(result.members):
        member_dir(workdir, encoder, k).mkdir(parents=True, exist_ok=True)
        report = dict(training, test_loss=float(test.loss[k].mean()))
        if test.is_mask:
            counts = (test.intersection[k], test.pred_area[k], test.true_area[k])
            _write_csv(scores_file(workdir, encoder, "mask", k), MASK_STAT_COLUMNS, zip(test.case_ids, *counts))
            dice = M.dice_from_statistics(M.MaskStatistics(*counts), empty_mask_rule)
            report["metric"], report["test_mean_dice"] = "dice", M.mean_over_cases(dice)
        else:
            logits, ranking = test.outputs[k], result.loss == "bce"
            score = 1.0 / (1.0 + np.exp(-logits.astype(np.float64))) if ranking else logits
            _write_csv(scores_file(workdir, encoder, "ranking" if ranking else "regression", k), SCORE_COLUMNS,
                       zip(test.case_ids, test.y_true, score))
            np.save(logits_file(workdir, encoder, k), logits)
            if ranking:
                report["metric"], report["test_auroc"] = "auroc", _nan_if_undefined(M.auroc, test.y_true, score)
            else:
                report["metric"], report["test_r2"] = "r2", _nan_if_undefined(M.r2, test.y_true, score)
        member_reports.append(report)
    metric_key = {"dice": "test_mean_dice", "auroc": "test_auroc", "r2": "test_r2"}[member_reports[0]["metric"]]
    summary = {
        "name": result.name, "loss": result.loss, "config": result.config, "n_test": len(test.case_ids),
        "members": member_reports,
        "spread": {"test_loss": _spread([r["test_loss"] for r in member_reports]),
                   metric_key: _spread([r[metric_key] for r in member_reports]),
                   "best_val_loss": _spread([r["best_val_loss"] for r in member_reports])},
        "history": result.history,
    }
    _write_atomically(summary_file(workdir, encoder), json.dumps(summary, indent=1))
    return summary


def write_validation(workdir: str | pathlib.Path, encoder: str, val: "TestPredictions") -> None:
    """Each member's validation scores (probabilities), for choosing an operating point; before summary.json."""
    for k in range(len(val.outputs)):
        member_dir(workdir, encoder, k).mkdir(parents=True, exist_ok=True)
        score = 1.0 / (1.0 + np.exp(-np.asarray(val.outputs[k], np.float64)))
        _write_csv(validation_file(workdir, encoder, k), SCORE_COLUMNS, zip(val.case_ids, val.y_true, score))


def load_validation(workdir: str | pathlib.Path, encoder: str, member: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, score) of a member's validation cases."""
    path = validation_file(workdir, encoder, member)
    if not path.is_file():
        raise PredictionFileError(f"{path}: no validation scores (written by runs of jaxprobe >= the operating "
                                  "points; re-run the analysis in a new work directory)")
    rows = _read_csv(path, SCORE_COLUMNS, _finite)
    values = np.array(list(rows.values()), np.float64).reshape(-1, 2)
    return values[:, 0], values[:, 1]


def write_head(workdir: str | pathlib.Path, encoder: str, setup: dict) -> None:
    """The identity of the head's predictions (written before training; a finished summary.json is reused only
    when the run's set-up equals it)."""
    path = head_file(workdir, encoder)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, json.dumps(setup, indent=2) + "\n")


def _write_atomically(path: pathlib.Path, text: str) -> None:
    """Whole or not at all: a kill leaves the old file (or none), never half of the new one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _nan_if_undefined(metric: Callable[[np.ndarray, np.ndarray], float], y_true, prediction) -> float:
    # jaxprobe.metrics refuses what it cannot define (one class for AUROC, a constant y_true for R²); a summary
    # records NaN instead and the statistics module says why
    try:
        return metric(y_true, prediction)
    except ValueError:
        return float("nan")


def _spread(values: Sequence[float]) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}


def _write_csv(path: pathlib.Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            # repr: the shortest text that reads back as the same float64
            writer.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in row])


# ---------------------------------------------------------------------------------------------------- reading

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
        raise PredictionFileError(f"{path}: prediction file not found")
    rows: dict[str, tuple] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in columns if c not in fields]
        if missing:
            raise PredictionFileError(f"{path}: missing column(s) {missing}; expected {list(columns)}, "
                                      f"found {fields}")
        for line_no, raw in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            case = row["case_id"]
            if not case:
                raise PredictionFileError(f"{path}, line {line_no}: empty case_id")
            if case in rows:
                raise PredictionFileError(f"{path}, line {line_no}: case_id {case!r} appears twice")
            try:
                rows[case] = tuple(parse(row[c]) for c in columns[1:])
            except ValueError as e:
                raise PredictionFileError(f"{path}, line {line_no} (case {case!r}): {e}") from None
    if not rows:
        raise PredictionFileError(f"{path}: no rows")
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
            raise PredictionFileError(f"{path}: mask must be a single-channel PNG (mode 1, L or I;16), "
                                      f"got mode {im.mode}")
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
        raise PredictionFileError(f"{path}: values are 0/1, which as probabilities (x/{top}) would be all "
                                  "background; save masks as 0/255 or pass --mask-values label")
    return a / top > threshold


def _mask_folder_statistics(pred_dir: pathlib.Path, true_dir: pathlib.Path, threshold: float, mask_values: str,
                            intersect: bool):
    if not pred_dir.is_dir():
        raise PredictionFileError(f"{pred_dir}: not a folder of predicted masks")
    if not true_dir.is_dir():
        raise PredictionFileError(f"{true_dir}: not a folder of true masks")
    unpredicted = sorted({p.stem for p in true_dir.glob("*.png")} - {p.stem for p in pred_dir.glob("*.png")})
    if unpredicted and not intersect:
        raise PredictionFileError(f"{pred_dir}: no predicted mask for {len(unpredicted)} true masks in "
                                  f"{true_dir}, e.g. {unpredicted[:5]}; pass --intersect to score only the predicted "
                                  "cases")
    rows = {}
    for path in sorted(pred_dir.glob("*.png")):
        true_path = true_dir / path.name
        if not true_path.is_file():
            raise PredictionFileError(f"{true_path}: no true mask for predicted mask {path}")
        pred = _pred_mask(path, mask_values, threshold)
        true = _read_png(true_path) > 0
        if pred.shape != true.shape:
            raise PredictionFileError(f"{path}: shape {pred.shape} differs from its true mask {true_path} "
                                      f"{true.shape}")
        rows[path.stem] = (int(np.sum(pred & true)), int(np.sum(pred)), int(np.sum(true)))
    if not rows:
        raise PredictionFileError(f"{pred_dir}: no .png masks")
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
                    raise PredictionFileError(f"{path}: mask folders need --true-masks (the folder of true masks)")
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
        raise PredictionFileError(f"prediction files cover different cases: {details}. "
                                  "Fix the files or pass --intersect to use the common cases")
    if not common:
        raise PredictionFileError("prediction files share no case ids")
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
            raise PredictionFileError(f"{what} of case {c!r} is {values[bad[0]]} in {sources[model]} but "
                                      f"{reference[bad[0]]} in {sources[first_model]} ({bad.size} cases disagree)")

    if kind == "mask":
        predictions = {m: _mask_statistics(sources[m], [rows[c] for c in case_ids]) for m, rows in per_model.items()}
        y_true = None
    else:
        predictions = {m: np.array([rows[c][1] for c in case_ids]) for m, rows in per_model.items()}
        y_true = reference if kind == "regression" else reference.astype(np.int64)
        if kind == "ranking" and not np.all(np.isin(reference, (0, 1))):
            raise PredictionFileError(f"{sources[first_model]}: y_true must be 0/1 for {kind} metrics, "
                                      f"found {np.unique(reference)[:10].tolist()}")
    return LoadedPredictions(case_ids, y_true, predictions, dropped)


def _mask_statistics(source: str, rows: list[tuple]) -> M.MaskStatistics:
    try:
        return M.MaskStatistics.from_array(np.array(rows, np.int64))
    except ValueError as e:
        raise PredictionFileError(f"{source}: {e}") from None


def load_run(workdir: str | pathlib.Path, encoders: Sequence[str], kind: str, *, member: int = 0,
             shared_truth: bool = True) -> LoadedPredictions:
    """One member's predictions of each encoder in a run's folder, matched by case id (``load_predictions``)."""
    sources = {name: str(scores_file(workdir, name, kind, member)) for name in encoders}
    return load_predictions(kind, sources, shared_truth=shared_truth)


def load_masks(workdir: str | pathlib.Path, encoder: str, member: int = 0) -> tuple[list[str], np.ndarray]:
    """One member's case ids and predicted masks (bool [n,S,S], memory-mapped), row i of the masks for case i."""
    path = masks_file(workdir, encoder, member)
    if not path.is_file():
        raise PredictionFileError(f"{path}: no predicted masks (the run writes them for segmentation analyses)")
    case_ids = list(_read_csv(scores_file(workdir, encoder, "mask", member), MASK_STAT_COLUMNS, _count))
    masks = np.load(path, mmap_mode="r")
    if masks.shape[0] != len(case_ids):
        raise PredictionFileError(f"{path}: {masks.shape[0]} masks for the {len(case_ids)} cases of its CSV")
    return case_ids, masks


def read_head(workdir: str | pathlib.Path, encoder: str) -> dict:
    """The set-up that produced an encoder's predictions (head, training, encoder identity, store path)."""
    path = head_file(workdir, encoder)
    if not path.is_file():
        raise PredictionFileError(f"{path}: not found; the predictions beside it were not written by a run")
    return read_json(path, PredictionFileError)
