"""What a person reads after a run: the configuration that re-runs it, plots, and a model card.

`write_run_report` is called by every recipe once the results are in; it writes, next to the model,
`run_config.yaml` (every setting given, with its final value: `--config run_config.yaml` repeats
the run), `training_curves.png`, `confusion_matrix.png` (classification) or `entity_f1.png` (NER),
and `README.md`, a model card with the task, data, labels, settings, results and limitations.
"""

import logging
from pathlib import Path

import numpy as np
import yaml

from common import plots
from common.report import model_name
from common.tagging import entity_types

logger = logging.getLogger(__name__)

TASKS = {
    "classification": ("text-classification", "text classification"),
    "ner": ("token-classification", "named entity recognition"),
}


def write_run_report(output_dir, results: dict, training_args, log_history: list[dict], task: str,
                     validation_prediction=None, recipe: str = "") -> list[Path]:
    output_dir = Path(output_dir)
    written = [write_run_config(output_dir / "run_config.yaml", training_args.recipe_config)]
    metric = results.get("main_metric") or "loss"
    written.append(plots.training_curves(output_dir / "training_curves.png", log_history, metric))
    labels = results.get("labels", [])
    if task == "ner":
        written.append(plots.entity_f1_bars(output_dir / "entity_f1.png", results, entity_types(labels)))
    elif validation_prediction is not None and validation_prediction.label_ids is not None:
        logits = validation_prediction.predictions
        gold = np.asarray(validation_prediction.label_ids)
        if gold.ndim == 1:  # single-label; a multi-label confusion matrix is not one matrix
            written.append(plots.confusion_matrix(output_dir / "confusion_matrix.png", gold,
                                                  np.asarray(logits).argmax(-1), labels))
    written = [path for path in written if path is not None]
    written.append(write_model_card(output_dir / "README.md", results, task, recipe,
                                    [p.name for p in written if p.suffix == ".png"]))
    return written


def write_run_config(path, config: dict) -> Path:
    path = Path(path)
    header = "# Every setting this run was given, with its final value. Re-run: run.py --config run_config.yaml\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _score_rows(results: dict, labels: list[str], task: str) -> list[str]:
    rows = []
    for split, prefix in (("validation", "eval"), ("test", "test")):
        if task == "ner":
            for kind in entity_types(labels):
                if f"{prefix}_{kind}_f1" in results:
                    rows.append(f"| {split} | {kind} | {results[f'{prefix}_{kind}_precision']:.4f} | "
                                f"{results[f'{prefix}_{kind}_recall']:.4f} | {results[f'{prefix}_{kind}_f1']:.4f} | "
                                f"{results.get(f'{prefix}_{kind}_number', '')} |")
        else:
            for label in labels:
                if f"{prefix}_f1_{label}" in results:
                    rows.append(f"| {split} | {label} | {results[f'{prefix}_precision_{label}']:.4f} | "
                                f"{results[f'{prefix}_recall_{label}']:.4f} | {results[f'{prefix}_f1_{label}']:.4f} | "
                                f"{results.get(f'{prefix}_support_{label}', '')} |")
    return rows


def write_model_card(path, results: dict, task: str, recipe: str, images: list[str]) -> Path:
    pipeline_tag, task_name = TASKS[task]
    model = results.get("model", "?")
    from_scratch = "from scratch" in str(model)
    local = Path(model).is_dir()
    model = model_name(model)
    labels = results.get("labels", [])
    metric = results.get("main_metric") or "accuracy"
    overall = [f"| {split} | {results[f'{prefix}_{name}']:.4f} |" for split, prefix in (("validation", "eval"), ("test", "test"))
               for name in [metric] if f"{prefix}_{name}" in results]
    settings = {key: results.get(key) for key in ("learning_rate", "num_train_epochs", "max_steps",
                                                  "per_device_train_batch_size", "world_size", "max_seq_length",
                                                  "train_sampling_strategy", "padding", "precision", "seed")}
    data = results.get("data", {})
    sizes = results.get("sizes", {})
    lines = [
        "---",
        "library_name: transformers",
        f"pipeline_tag: {pipeline_tag}",
        *([] if from_scratch or local else [f"base_model: {model}"]),
        "---",
        "",
        f"# {Path(path).parent.name}",
        "",
        f"A {task_name} model: {'a ' + model if from_scratch else '`' + model + '`'} fine-tuned with the "
        f"`recipes/{recipe}` recipe of this repository.",
        "",
        "## Data",
        "",
        *[f"- {split}: {sizes.get(split, '?'):,} examples from `{source}`" if isinstance(sizes.get(split), int)
          else f"- {split}: `{source}`" for split, source in data.items()],
        *[f"- note: {note}" for note in results.get("data_notes", [])],
        "",
        f"Labels ({len(labels)}): " + ", ".join(f"`{label}`" for label in labels),
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in settings.items() if value is not None],
        f"| hardware | {results.get('hardware', '?')} |",
        f"| training time | {results.get('train_runtime', 0):.0f} s ({results.get('train_samples_per_second', 0):.1f} samples/s) |",
        "",
        "## Results",
        "",
        f"| split | {metric} |",
        "|---|---|",
        *overall,
        "",
        f"| split | {'type' if task == 'ner' else 'class'} | precision | recall | F1 | support |",
        "|---|---|---|---|---|---|",
        *_score_rows(results, labels, task),
        "",
        *[f"![{image}]({image})" for image in images],
        "",
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        f'model = pipeline("{pipeline_tag}", model="PATH/TO/THIS/FOLDER"'
        + (', aggregation_strategy="simple")' if task == "ner" else ")"),
        "```",
        "",
        "## Intended use and limitations",
        "",
        f"- Trained for {task_name} on the data above; expect lower accuracy on other domains, text "
        "styles or label definitions, and check it on your own data before relying on it.",
        "- The figures are from one run with one seed; runs with other seeds differ by a few tenths of a point.",
        *(["- Trained from scratch on a small dataset, with no pretraining: a demonstration that the recipe "
           "trains, not a model for use."] if from_scratch else []),
        "- Biases of the pretraining and fine-tuning data carry over into the predictions.",
        "",
        "## Reproduce",
        "",
        "```bash",
        f"python recipes/{recipe}/run.py --config run_config.yaml",
        f"# as run: {results.get('command', '')}",
        "```",
        "",
    ]
    path = Path(path)
    path.write_text("\n".join(lines), encoding="utf-8")
    logger.info(f"Model card written to {path}")
    return path
