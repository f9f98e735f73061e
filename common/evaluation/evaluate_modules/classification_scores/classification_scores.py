"""An `evaluate` metric module: accuracy, Matthews correlation, and precision, recall and F1 (macro, micro, per class).

Shipped with the project because `evaluate.load("accuracy")` fetches its code from the Hub, which a
machine without internet access cannot reach. Load it with
`evaluate.load("common/evaluation/evaluate_modules/classification_scores")`, or the `"multilabel"` configuration
for multi-hot predictions and references.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, matthews_corrcoef, precision_recall_fscore_support

_DESCRIPTION = "Accuracy, and precision, recall and F1 averaged over classes (macro), over decisions (micro) and per class."

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted class ids (or multi-hot lists with the "multilabel" configuration).
    references: true class ids (or multi-hot lists).
    num_labels (int, optional): number of classes, so that classes absent from both lists still count
        in the macro average and get a per-class entry. Default: the classes seen.
Returns:
    accuracy (exact match of the whole label set for multilabel), matthews_correlation (single-label:
    GLUE's CoLA metric, 0 when either side holds one class only), precision_macro, recall_macro,
    f1_macro, precision_micro, recall_micro, f1_micro, and lists precision_per_class,
    recall_per_class, f1_per_class, support_per_class (in class-id order).
Example:
    >>> scores = evaluate.load("common/evaluation/evaluate_modules/classification_scores")
    >>> scores.compute(predictions=[0, 1, 1], references=[0, 1, 0])["accuracy"]
    0.6666666666666666
"""


class ClassificationScores(evaluate.Metric):
    """Accuracy, macro and per-class precision, recall, F1 and support, single- or multi-label, as an `evaluate` module
    shipped with the project (a Hub metric cannot be loaded offline)."""

    def _info(self):
        value = datasets.Sequence(datasets.Value("int32")) if self.config_name == "multilabel" else datasets.Value("int32")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": value, "references": value}),
        )

    def _compute(self, predictions, references, num_labels=None):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if self.config_name == "multilabel":
            labels = list(range(num_labels or references.shape[1]))
        else:
            labels = list(range(num_labels)) if num_labels else sorted(set(references) | set(predictions))
        scores = {"accuracy": float(accuracy_score(references, predictions))}
        if self.config_name != "multilabel":
            scores["matthews_correlation"] = float(matthews_corrcoef(references, predictions))
        for average in ("macro", "micro"):
            p, r, f, _ = precision_recall_fscore_support(
                references, predictions, labels=labels, average=average, zero_division=0
            )
            scores.update({f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)})
        p, r, f, support = precision_recall_fscore_support(
            references, predictions, labels=labels, average=None, zero_division=0
        )
        scores.update({
            "precision_per_class": p.tolist(),
            "recall_per_class": r.tolist(),
            "f1_per_class": f.tolist(),
            "support_per_class": support.tolist(),
        })
        return scores
