"""For whom the model works: metrics per group of inputs (`--group_column`), with fairlearn's MetricFrame.

Per group: the row count, accuracy, macro F1, each class's recall and the rate at which each class is
predicted, each with a bootstrap confidence interval (rows resampled within the data, 95%); and per
metric the largest gap between groups (max - min) with its interval. For two classes also the
demographic-parity and equalized-odds differences, the second label counting as positive.
(fairlearn's demographic-parity functions look at one class only, so they are not given for more.)
"""

import logging
from functools import partial

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, count, demographic_parity_difference, equalized_odds_difference
from sklearn.metrics import accuracy_score, f1_score, recall_score

from common.data.errors import DataError
from common.evaluation.metrics import logits_of

logger = logging.getLogger(__name__)

N_BOOT = 200
QUANTILES = [0.025, 0.975]


def _predicted_rate(y_true, y_pred, label: int) -> float:
    return float(np.mean(np.asarray(y_pred) == label))


def group_metric_functions(label_list: list[str]) -> dict:
    """The metrics computed per group: accuracy, macro F1 and each class's recall."""
    labels = list(range(len(label_list)))
    metrics = {"accuracy": accuracy_score,
               "f1_macro": partial(f1_score, labels=labels, average="macro", zero_division=0)}
    for i, name in enumerate(label_list):
        metrics[f"recall_{name}"] = partial(recall_score, labels=[i], average="macro", zero_division=0)
        metrics[f"predicted_rate_{name}"] = partial(_predicted_rate, label=i)
    return metrics


def group_column_values(split, column: str) -> pd.Series:
    """The group of every row of a split; a missing column is an error listing the columns found."""
    frame = split.frame
    if column not in frame.columns:
        found = ", ".join(c for c in frame.columns if not c.startswith("_") and c != "labels")
        raise DataError(f"{split.source}: --group_column {column!r} is not a column (columns found: {found})")
    return frame[column].fillna("(missing)").astype(str)


def group_metrics(y_true, y_pred, groups, label_list: list[str], seed: int = 0, n_boot: int = N_BOOT) -> dict:
    """Per-group metrics with bootstrap intervals, the largest gap of each, and (two classes) parity differences."""
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)
    sizes = pd.Series(groups).value_counts()
    tiny = sizes[sizes < 2]
    if len(tiny):
        logger.warning(f"--group_column: {len(tiny)} group(s) with fewer than 2 rows, kept and reported, but their "
                       "scores say little: " + ", ".join(f"{g} ({n})" for g, n in tiny.items()))
    metrics = group_metric_functions(label_list)
    frame = MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=groups,
                        n_boot=n_boot, ci_quantiles=QUANTILES, random_state=seed)
    by_group = frame.by_group
    low, high = frame.by_group_ci
    gaps, (gap_low, gap_high) = frame.difference(method="between_groups"), frame.difference_ci(method="between_groups")
    counts = MetricFrame(metrics=count, y_true=y_true, y_pred=y_pred, sensitive_features=groups).by_group
    result = {
        "groups": {str(g): {"count": int(counts[g]),
                            **{m: float(by_group.at[g, m]) for m in metrics},
                            **{f"{m}_ci": [float(low.at[g, m]), float(high.at[g, m])] for m in metrics}}
                   for g in by_group.index},
        "largest_gap": {m: {"value": float(gaps[m]), "ci": [float(gap_low[m]), float(gap_high[m])]} for m in metrics},
        "interval": f"bootstrap, {n_boot} resamples, {QUANTILES[0]:.1%}-{QUANTILES[1]:.1%} quantiles",
        "small_groups": {str(g): int(n) for g, n in tiny.items()},
    }
    if len(label_list) == 2:
        result["positive_label"] = label_list[1]
        result["demographic_parity_difference"] = float(demographic_parity_difference(
            y_true, y_pred, sensitive_features=groups))
        result["equalized_odds_difference"] = float(equalized_odds_difference(y_true, y_pred, sensitive_features=groups))
    return result


def log_group_metrics(split: str, column: str, result: dict) -> None:
    """Each group's rows, accuracy with its interval and macro F1, and the largest accuracy gap, in the log."""
    for group, values in result["groups"].items():
        logger.info(f"{split} group {column}={group}: {values['count']} rows, accuracy {values['accuracy']:.4f} "
                    f"[{values['accuracy_ci'][0]:.4f}, {values['accuracy_ci'][1]:.4f}], macro F1 {values['f1_macro']:.4f}")
    gap = result["largest_gap"]["accuracy"]
    logger.info(f"{split}: largest accuracy gap between groups {gap['value']:.4f} [{gap['ci'][0]:.4f}, {gap['ci'][1]:.4f}]")


def check_group_column(raw, column: str | None, multi_label: bool) -> None:
    """Before training: the column is in every validation and test file, and the task has one label a row."""
    if not column:
        return
    if multi_label:
        raise DataError("--group_column is for single-label classification (per-group recall and rates need one "
                        "label a row)")
    scored = [name for name in ("validation", "test") if name in raw.splits]
    if not scored:
        raise DataError("--group_column needs a validation or test split to score by group")
    for name in scored:
        group_column_values(raw.splits[name], column)


def scores_by_group(raw, column: str | None, predictions: dict, label_list: list[str], seed: int) -> dict:
    """`eval_groups` / `test_groups` for all_results.json (common.outputs.analysis plots them)."""
    results = {}
    for name, prefix in (("validation", "eval"), ("test", "test")):
        split = raw.splits.get(name)
        if not column or name not in predictions or split is None:
            continue
        if "labels" not in split.frame:
            logger.warning(f"--group_column: the {name} split has no labels, so it cannot be scored by group")
            continue
        predicted = np.asarray(logits_of(predictions[name].predictions)).argmax(-1)
        result = group_metrics(split.frame["labels"].to_numpy(), predicted,
                               group_column_values(split, column).to_numpy(), label_list, seed)
        result["column"] = column
        log_group_metrics(name, column, result)
        results[f"{prefix}_groups"] = result
    return results
