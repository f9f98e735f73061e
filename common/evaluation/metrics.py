"""Turning model outputs into decisions and scores, through `evaluate` and the metric modules shipped here.

One naming scheme for every task: the averages by name (`accuracy`, `f1`, `f1_macro`, ...), and per
class or entity type `<metric>_<name>` with metric one of precision, recall, f1, support
(`f1_positive`, `f1_PER`), so reports and plots read both kinds the same way.
"""

from pathlib import Path

import evaluate
import numpy as np
from scipy.special import expit, softmax

from common.data.tag_schemes import forbidden_transitions

MODULES = Path(__file__).resolve().parent / "evaluate_modules"
PER_NAME_METRICS = ("precision", "recall", "f1", "support")


def load_metric(name: str, config_name: str | None = None):
    """Load a metric module shipped in `common/evaluation/evaluate_modules/` (works offline)."""
    return evaluate.load(str(MODULES / name), config_name)


def probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """Softmax over classes, or a sigmoid per label for multi-label models."""
    return expit(logits) if multi_label else softmax(logits, axis=-1)


def decisions(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """Class ids (single-label), or a 0/1 matrix where a label's probability exceeds 0.5 (multi-label)."""
    return (logits > 0).astype(int) if multi_label else logits.argmax(axis=-1)


def logits_of(predictions) -> np.ndarray:
    """The logits of a prediction output (models that return more than logits give a tuple, logits first)."""
    return predictions[0] if isinstance(predictions, tuple) else predictions


def classification_metrics(label_list: list[str], multi_label: bool = False):
    """A `compute_metrics` function for `Trainer`: averages, plus `<metric>_<label>` for each class."""
    module = load_metric("classification_scores", "multilabel" if multi_label else None)

    def compute_metrics(eval_prediction):
        logits = logits_of(eval_prediction.predictions)
        references = eval_prediction.label_ids.astype(int)
        scores = module.compute(predictions=decisions(logits, multi_label), references=references,
                                num_labels=len(label_list))
        flat = {k: v for k, v in scores.items() if not k.endswith("_per_class")}
        for metric in PER_NAME_METRICS:
            for label, value in zip(label_list, scores[f"{metric}_per_class"]):
                flat[f"{metric}_{label}"] = value
        return flat

    averages = ["accuracy"] + ([] if multi_label else ["matthews_correlation"]) + [
        f"{m}_{avg}" for avg in ("macro", "micro") for m in ("precision", "recall", "f1")]
    compute_metrics.names = averages + [f"{m}_{label}" for m in PER_NAME_METRICS for label in label_list]
    return compute_metrics


def regression_metrics():
    """A `compute_metrics` function for `Trainer` on a predicted score: pearson, spearman, their mean, mse."""
    module = load_metric("regression_scores")

    def compute_metrics(eval_prediction):
        predicted = np.asarray(logits_of(eval_prediction.predictions)).reshape(-1)
        return module.compute(predictions=predicted, references=np.asarray(eval_prediction.label_ids).reshape(-1))

    compute_metrics.names = ["pearson", "spearman", "pearson_spearman_mean", "mse"]
    return compute_metrics


def text_metrics(raw, label_list: list[str], multi_label: bool = False):
    """The `compute_metrics` of a text task: scores for a regression (`raw.regression`), else per-class ones."""
    return regression_metrics() if raw.regression else classification_metrics(label_list, multi_label)


def flatten_entity_scores(scores: dict) -> dict:
    """seqeval's nested output -> flat keys: precision, recall, f1, accuracy, and <metric>_<TYPE>."""
    flat = {name: scores[f"overall_{name}"] for name in ("precision", "recall", "f1", "accuracy")}
    for kind, values in scores.items():
        if isinstance(values, dict):
            flat.update({f"{metric}_{kind}": values["number" if metric == "support" else metric]
                         for metric in PER_NAME_METRICS})
    return flat


def entity_metrics(features, gold_tags: list[list[str]], label_list: list[str], model=None):
    """A `compute_metrics` for token classification, scored on words (not subwords) with seqeval, the tags decoded
    as `model` decodes them (`tag_decoder`: a CRF tagger's Viterbi, else each word's best). Also counts the
    predicted tag transitions IOB2 forbids (`O I-X`, `B-X I-Y`)."""
    from common.models.heads import tag_decoder  # (torch and transformers: imported only by taggers)

    decode = tag_decoder(model)
    module = load_metric("seqeval_scores")

    def compute_metrics(eval_prediction):
        logits = logits_of(eval_prediction.predictions)
        predicted = features.tags(logits, label_list, decode)
        scores = flatten_entity_scores(module.compute(predictions=predicted, references=gold_tags))
        return {**scores, "forbidden_transitions": forbidden_transitions(predicted)}

    kinds = sorted({label.split("-", 1)[1] for label in label_list if "-" in label})
    compute_metrics.names = ["precision", "recall", "f1", "accuracy", "forbidden_transitions"] + [
        f"{m}_{k}" for m in PER_NAME_METRICS for k in kinds]
    return compute_metrics
