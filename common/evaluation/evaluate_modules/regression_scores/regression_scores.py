"""An `evaluate` metric module for a predicted score (regression): Pearson and Spearman correlation, their mean, and MSE.

Shipped with the project because `evaluate.load("pearsonr")` fetches its code from the Hub, which a machine
without internet access cannot reach. Load it with
`evaluate.load("common/evaluation/evaluate_modules/regression_scores")`.
"""

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr

_DESCRIPTION = "Pearson and Spearman correlation of predicted with true scores, their mean, and the mean squared error."

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted scores.
    references: true scores.
Returns:
    pearson, spearman (0 when either side is constant: no correlation is defined), pearson_spearman_mean
    (what selects STS-B's best checkpoint), mse.
Example:
    >>> scores = evaluate.load("common/evaluation/evaluate_modules/regression_scores")
    >>> scores.compute(predictions=[1.0, 2.0, 3.5], references=[1.0, 2.0, 3.0])["spearman"]
    1.0
"""


def _correlation(function, predictions: np.ndarray, references: np.ndarray) -> float:
    if np.ptp(predictions) == 0 or np.ptp(references) == 0:
        return 0.0
    return float(function(predictions, references)[0])


class RegressionScores(evaluate.Metric):
    """Pearson, Spearman, their mean and MSE of predicted scores, as an `evaluate` module shipped with the project."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions, dtype=float), np.asarray(references, dtype=float)
        pearson = _correlation(pearsonr, predictions, references)
        spearman = _correlation(spearmanr, predictions, references)
        return {"pearson": pearson, "spearman": spearman, "pearson_spearman_mean": (pearson + spearman) / 2,
                "mse": float(np.mean((predictions - references) ** 2))}
