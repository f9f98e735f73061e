"""Label sets and label encoding for single- and multi-label classification, and scores for regression.

The label set comes from the training data (or the source's own names, such as a `ClassLabel`) in a
stable order: numbers numerically, other names alphabetically. It is what the model config's
`id2label`/`label2id` hold, so a saved model shows names, not ids.
"""

import math

import numpy as np
import pandas as pd

from common.data.errors import DataError
from common.data.tables import Split, TextData

# Label values that mean "no label" (as pandas reads them), never a class of their own
MISSING_LABELS = {"nan", "none", "null", "n/a", "#n/a", "<na>"}


def missing_label(value, multi_label: bool = False) -> bool:
    """Whether a label value is missing: null, NaN, or a string such as 'NaN', 'None' or '' (multi-label: an
    empty string or list is a row with no labels, not a missing one)."""
    if isinstance(value, (list, tuple)):
        return False
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    if isinstance(value, str):
        return value.strip().lower() in MISSING_LABELS or (not multi_label and not value.strip())
    return False


def natural_key(label: str):
    """Sort '2' before '10', and numbers before names."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def row_labels(value, multi_label: bool, separator: str | None) -> list[str]:
    """The label(s) of one row as strings: a list, a separator-joined string, or a single value."""
    if not multi_label:
        return [str(value).strip()]
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value]
    if separator is None:
        raise ValueError("multi-label values must be lists, or strings joined by --label_separator")
    return [v.strip() for v in str(value).split(separator) if v.strip()]


def _labels_of(split: Split, column: str, multi_label: bool, separator: str | None) -> pd.Series:
    def parse(index):
        try:
            return row_labels(split.frame.at[index, column], multi_label, separator)
        except ValueError as e:
            raise DataError(f"{split.where(index)}: {e}") from None

    return pd.Series({i: parse(i) for i in split.frame.index}, dtype=object)


def number(value) -> float | None:
    """A label value as a finite float, or None when it is not one."""
    try:
        value = float(str(value).strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def decide_regression(raw: TextData, asked: bool | None, multi_label: bool = False) -> None:
    """Set `raw.regression`: as asked (--regression), as the benchmark says, or else when every training label
    is a number and some have fractions (STS-B's 3.8): those are scores to predict, not classes."""
    if asked is not None:
        raw.regression = asked
    source = raw.splits.get("train") or raw.splits.get("validation")
    if asked is None and not raw.regression and source is not None and raw.label_column in source.frame:
        values = source.frame[raw.label_column]
        values = values[~values.map(missing_label)]
        numbers = values.map(number)
        fractions = numbers % 1 != 0
        if len(values) and numbers.notna().all() and fractions.any():
            i = fractions.idxmax()  # the first label with a fraction
            if multi_label:
                raise DataError(f"{source.where(i)}: label {values[i]!r} is a number with a fraction, a score to "
                                "predict rather than label names: leave out --multi_label (regression), or name "
                                "the labels")
            raw.regression = True
            raw.notes.append(f"{source.source}: the labels are numbers with fractions (such as {values[i]!r}): a "
                             "regression head (one output, MSE loss); --regression False makes each value a class")
    if raw.regression:
        raw.label_origin = "a score"


def build_label_list(raw: TextData, multi_label: bool = False, separator: str | None = None,
                     model_labels: list[str] | None = None) -> list[str]:
    """The label set, in a stable order: a trained model's own (`model_labels`), else the source's names or
    the training rows'. Training data with a single class is an error: nothing could be learned from it."""
    if raw.regression:  # one output, named after the label column (what pipeline() shows)
        return list(model_labels) if model_labels is not None else [raw.label_column]
    if model_labels is not None:
        raw.label_origin = "the model's labels"
        return list(model_labels)
    seen = set()
    source = raw.splits.get("train") or raw.splits.get("validation")
    if source is not None:
        for labels in _labels_of(source, raw.label_column, multi_label, separator):
            seen.update(labels)
    if "train" in raw.splits and not multi_label and len(seen) == 1:
        raise DataError(f"{source.source}: every training row has the label {next(iter(seen))!r}; a classifier needs "
                        "at least two classes to learn anything")
    if raw.label_names is not None:
        unknown = seen - set(raw.label_names)
        if unknown:
            raise DataError(f"{source.source}: labels {sorted(unknown)} are not among {raw.label_names}")
        return list(raw.label_names)
    if not seen:
        raise DataError("no labels found: give training data, or evaluate a trained model (--do_train False "
                        "--model OUTPUT_DIR), whose labels are in its config")
    return sorted(seen, key=natural_key)


def encode_labels(raw: TextData, label_list: list[str], multi_label: bool = False,
                  separator: str | None = None) -> None:
    """Add a `labels` column to every labelled split: class ids, or multi-hot float vectors.

    A label that the label set does not hold is an error naming the file, line and label.
    """
    label2id = {name: i for i, name in enumerate(label_list)}
    for split in raw.splits.values():
        frame = split.frame
        if raw.label_column not in frame or frame[raw.label_column].map(missing_label).all():
            continue  # an unlabelled test set
        if raw.regression:
            scores = frame[raw.label_column].map(number)
            if scores.isna().any():
                i = scores.isna().idxmax()
                raise DataError(f"{split.where(i)}: label {frame.at[i, raw.label_column]!r} is not a number (a "
                                "regression label is a score such as 3.8)")
            frame["labels"] = scores.astype("float32")
            continue
        parsed = _labels_of(split, raw.label_column, multi_label, separator)
        for index, labels in parsed.items():
            unknown = [label for label in labels if label not in label2id]
            if unknown:
                raise DataError(f"{split.where(index)}: label {unknown[0]!r} is not in {raw.label_origin} "
                                f"({', '.join(label_list)})")
        if multi_label:
            def multi_hot(labels):
                vector = np.zeros(len(label_list), dtype=np.float32)
                vector[[label2id[label] for label in labels]] = 1.0
                return vector.tolist()
            frame["labels"] = parsed.map(multi_hot)
        else:
            frame["labels"] = parsed.map(lambda labels: label2id[labels[0]])
