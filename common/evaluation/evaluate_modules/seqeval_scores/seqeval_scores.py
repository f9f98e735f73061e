"""An `evaluate` metric module: entity-level precision, recall and F1 with `seqeval`, plus token accuracy.

Shipped with the project because `evaluate.load("seqeval")` fetches its code from the Hub. An entity
counts as found only if its span and its type are both exact (CoNLL's definition). The output has
the same shape as the Hub module's: one dict per entity type, then the overall figures.
"""

import datasets
import evaluate
from seqeval.metrics import accuracy_score, classification_report

_DESCRIPTION = "Entity-level precision, recall and F1 (exact span and type) and token accuracy, with seqeval."

_KWARGS_DESCRIPTION = """
Args:
    predictions: a list of tag sequences (IOB2 strings such as "B-PER"), one per sentence.
    references: the gold tag sequences, of the same lengths.
    mode (optional): None for conlleval's counting (the default), or "strict" with a scheme.
Returns:
    {TYPE: {"precision", "recall", "f1", "number"}} for each entity type, and overall_precision,
    overall_recall, overall_f1, overall_accuracy.
Example:
    >>> seqeval = evaluate.load("common/evaluation/evaluate_modules/seqeval_scores")
    >>> seqeval.compute(predictions=[["B-PER", "I-PER", "O"]], references=[["B-PER", "I-PER", "O"]])["overall_f1"]
    1.0
"""


class SeqevalScores(evaluate.Metric):
    """Entity precision, recall and F1 (overall and per type) with seqeval in strict IOB2 mode, as an `evaluate`
    module shipped with the project."""

    def _info(self):
        tags = datasets.Sequence(datasets.Value("string"))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": tags, "references": tags}),
        )

    def _compute(self, predictions, references, mode=None, scheme=None):
        if scheme is not None:
            import seqeval.scheme

            scheme = getattr(seqeval.scheme, scheme)
        report = classification_report(references, predictions, mode=mode, scheme=scheme, output_dict=True,
                                       zero_division=0)
        overall = report.pop("micro avg")
        for average in ("macro avg", "weighted avg"):
            report.pop(average, None)
        scores = {kind: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]),
                         "number": int(v["support"])} for kind, v in report.items()}
        scores.update({
            "overall_precision": float(overall["precision"]),
            "overall_recall": float(overall["recall"]),
            "overall_f1": float(overall["f1-score"]),
            "overall_accuracy": float(accuracy_score(references, predictions)),
        })
        return scores
