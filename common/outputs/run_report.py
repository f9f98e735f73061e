"""What a person reads after a run, written next to the model once the results are in:
`run_config.yaml` (every setting given, with its final value: `--config run_config.yaml` repeats the
run), `training_curves.png`, `confusion_matrix.png` (classification), `predicted_scores.png` (regression)
or `entity_f1.png` (NER), and
`README.md`, the model card.
"""

from pathlib import Path

import numpy as np
import yaml

from common.config.redaction import without_credentials_in
from common.outputs import plots
from common.outputs.model_card import scored_names, write_model_card


def write_run_report(output_dir, results: dict, settings, log_history: list[dict], task: str,
                     validation_prediction=None, recipe: str = "") -> list[Path]:
    """`settings`: the run's `common.config.parsing.Settings`; `task`: "classification", "regression" or "ner"."""
    output_dir = Path(output_dir)
    written = [write_run_config(output_dir / "run_config.yaml", settings)]
    metric = results.get("main_metric") or "loss"
    written.append(plots.training_curves(output_dir / "training_curves.png", log_history, metric))
    labels = results.get("labels", [])
    if task == "ner":
        written.append(plots.f1_bars(output_dir / "entity_f1.png", results, scored_names(labels, task)))
    elif validation_prediction is not None and validation_prediction.label_ids is not None:
        logits = validation_prediction.predictions
        gold = np.asarray(validation_prediction.label_ids)
        if task == "regression":
            written.append(plots.score_scatter(output_dir / "predicted_scores.png", gold.reshape(-1),
                                               np.asarray(logits).reshape(-1), labels[0] if labels else "score"))
        elif gold.ndim == 1:  # single-label; a multi-label confusion matrix is not one matrix
            written.append(plots.confusion_matrix(output_dir / "confusion_matrix.png", gold,
                                                  np.asarray(logits).argmax(-1), labels))
    written = [path for path in written if path is not None]
    written.append(write_model_card(output_dir / "README.md", results, task, recipe,
                                    [p.name for p in written if p.suffix == ".png"]))
    return written


def write_run_config(path, settings) -> Path:
    """run_config.yaml: every setting given, with its final value, so that `--config` repeats the run."""
    path = Path(path)
    header = (f"# Every setting this run was given ({settings.config_file or 'no config file'}, then the command "
              "line), with its final value.\n# Re-run: run.py --config run_config.yaml\n")
    values = without_credentials_in(settings.values)  # a storage URL's password is not kept: give it again to re-run
    path.write_text(header + yaml.safe_dump(values, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
