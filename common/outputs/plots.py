"""PNG plots beside a run's results: training curves, confusion matrix, per-entity-type F1."""

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common.training.output_dir import final_path  # noqa: E402

logger = logging.getLogger(__name__)


def training_curves(path, log_history: list[dict], metric: str) -> Path | None:
    """Training loss and the evaluation metric against steps, from Trainer's log history."""
    loss = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    scores = [(e["step"], e[f"eval_{metric}"]) for e in log_history if f"eval_{metric}" in e and "step" in e]
    if not loss and not scores:
        return None
    figure, left = plt.subplots(figsize=(7, 4))
    if loss:
        left.plot(*zip(*loss), color="tab:blue", label="training loss")
        left.set_ylabel("training loss", color="tab:blue")
    left.set_xlabel("step")
    if scores:
        right = left.twinx()
        right.plot(*zip(*scores), color="tab:orange", marker="o", label=f"validation {metric}")
        right.set_ylabel(f"validation {metric}", color="tab:orange")
    left.set_title(f"Training loss and validation {metric}")
    return _save(figure, path)


def confusion_matrix(path, gold: np.ndarray, predicted: np.ndarray, label_names: list[str]) -> Path:
    """Rows: true class, normalised to 1; columns: predicted class."""
    n = len(label_names)
    counts = np.zeros((n, n))
    np.add.at(counts, (gold, predicted), 1)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = max(4, 0.6 * n + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(n), label_names, rotation=45, ha="right")
    axes.set_yticks(range(n), label_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            axes.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center",
                      color="white" if share[i, j] > 0.5 else "black", fontsize=8)
    axes.set_title("Confusion matrix, validation\n(each row: share of a true class)", fontsize=10)
    return _save(figure, path)


def score_scatter(path, gold: np.ndarray, predicted: np.ndarray, name: str) -> Path:
    """A regression's predicted against true scores on the validation set, with the line of perfect agreement."""
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.scatter(gold, predicted, s=6, alpha=0.4)
    low, high = float(min(gold.min(), predicted.min())), float(max(gold.max(), predicted.max()))
    axes.plot([low, high], [low, high], color="grey", linewidth=1)
    axes.set_xlabel(f"true {name}")
    axes.set_ylabel(f"predicted {name}")
    axes.set_title(f"Predicted against true {name}, validation ({len(gold):,} rows)", fontsize=10)
    return _save(figure, path)


def f1_bars(path, results: dict, names: list[str], prefix: str = "eval") -> Path | None:
    """F1 of each class or entity type (`<prefix>_f1_<name>`), with its support."""
    scores = [(t, results[f"{prefix}_f1_{t}"], results.get(f"{prefix}_support_{t}", 0)) for t in names
              if f"{prefix}_f1_{t}" in results]
    if not scores:
        return None
    figure, axes = plt.subplots(figsize=(max(5, 0.7 * len(scores) + 2), 4))
    bars = axes.bar([t for t, _, _ in scores], [f for _, f, _ in scores], color="tab:green")
    for bar, (_, f1, support) in zip(bars, scores):
        axes.text(bar.get_x() + bar.get_width() / 2, f1 + 0.01, f"{f1:.2f}\n(n={support})", ha="center", fontsize=8)
    axes.set_ylim(0, 1.15)
    axes.set_ylabel("F1")
    axes.set_title(f"F1 per type ({'validation' if prefix == 'eval' else prefix})")
    plt.setp(axes.get_xticklabels(), rotation=30, ha="right")
    return _save(figure, path)


def group_bars(path, result: dict, split: str) -> Path:
    """Accuracy, macro F1 and each class's recall per group (`--group_column`), with their bootstrap intervals."""
    groups = list(result["groups"])
    metrics = ["accuracy", "f1_macro"] + [m for m in next(iter(result["groups"].values()))
                                          if m.startswith("recall_") and not m.endswith("_ci")]
    figure, axes = plt.subplots(figsize=(max(6, 0.5 * len(groups) * len(metrics) + 2), 4))
    width = 0.8 / len(groups)
    for k, group in enumerate(groups):
        values = result["groups"][group]
        heights = [values[m] for m in metrics]
        errors = np.array([[values[m] - values[f"{m}_ci"][0], values[f"{m}_ci"][1] - values[m]] for m in metrics]).T
        axes.bar(np.arange(len(metrics)) + k * width, heights, width, yerr=np.clip(errors, 0, None), capsize=3,
                 label=f"{group} (n={values['count']})")
    axes.set_xticks(np.arange(len(metrics)) + width * (len(groups) - 1) / 2, metrics)
    axes.set_ylim(0, 1.1)
    axes.set_title(f"{split}: metrics per group, with 95% bootstrap intervals")
    axes.legend(fontsize=8)
    plt.setp(axes.get_xticklabels(), rotation=20, ha="right")
    return _save(figure, path)


def _save(figure, path) -> Path:
    path = Path(path)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    logger.info(f"Plot written to {final_path(path)}")
    return path
