"""What a run leaves in its output directory besides the model: results, run facts and predictions."""

import json
import logging
import platform
import sys
from pathlib import Path

import numpy as np
import torch
import transformers

from common.config import precision_name
from common.data import RawData
from common.metrics import decisions, probabilities
from common.tagging import tags_to_spans

logger = logging.getLogger(__name__)


def run_facts(model_args, data_args, training_args, data, label_list: list[str], max_length: int) -> dict:
    """The facts needed to read (and re-run) a results file. `data`: RawData or TaggedData."""
    return {
        "model": model_args.model_name_or_path,
        "data": data.sources(),
        "sizes": data.sizes(),
        "data_notes": data.notes,
        "labels": label_list,
        "main_metric": training_args.metric_for_best_model,
        "max_seq_length": max_length,
        "padding": ("max_length" if getattr(data_args, "pad_to_max_length", False)
                    else "packed" if getattr(training_args, "pack_batches", False) else "dynamic"),
        "train_sampling_strategy": training_args.train_sampling_strategy,
        "precision": precision_name(training_args),
        "seed": training_args.seed,
        "learning_rate": training_args.learning_rate,
        "num_train_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "world_size": training_args.world_size,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "hardware": f"{platform.machine()} {platform.processor() or ''}".strip()
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else f", {torch.get_num_threads()} CPU threads"),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }


def write_all_results(output_dir: str, results: dict) -> Path:
    """`all_results.json`, as the reference scripts name it: metrics of every split plus run facts."""
    path = Path(output_dir) / "all_results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=float) + "\n", encoding="utf-8")
    logger.info(f"Results written to {path}")
    return path


def write_classification_predictions(path, raw: RawData, split: str, logits: np.ndarray, label_list: list[str],
                                     multi_label: bool = False, separator: str = "|") -> Path:
    """One CSV row per input row, in the input's order: text, gold label (if known), prediction, probabilities."""
    frame = raw.splits[split].frame
    text_columns = [raw.text_column] + ([raw.text_pair_column] if raw.text_pair_column else [])
    out = frame[text_columns].reset_index(drop=True).copy()
    chosen = decisions(logits, multi_label)
    names = np.array(label_list)
    if "labels" in frame:
        gold = np.array(frame["labels"].tolist())
        out["label"] = [separator.join(names[row > 0]) for row in gold] if multi_label else names[gold]
    out["predicted"] = [separator.join(names[row > 0]) for row in chosen] if multi_label else names[chosen]
    for name, column in zip(label_list, probabilities(logits, multi_label).T):
        out[f"p({name})"] = column.round(6)
    path = Path(path)
    out.to_csv(path, index=False)
    logger.info(f"{len(out):,} predictions written to {path}")
    return path


def write_tagged_predictions(output_dir, split, predicted_tags: list[list[str]]) -> Path:
    """Word-level predictions in the input's own layout.

    CoNLL input: every line of the input file, with the predicted tag appended to each token line
    (-DOCSTART- and blank lines kept). JSON-lines or Hub input: one JSON object per sentence with
    `tokens`, the gold `tags` if known, and `predicted`.
    """
    output_dir = Path(output_dir)
    if split.format == "conll":
        predicted_at = {line: tag for lines, tags in zip(split.lines, predicted_tags) for line, tag in zip(lines, tags)}
        path = output_dir / "predictions.conll"
        with open(split.source, encoding="utf-8") as source, open(path, "w", encoding="utf-8") as out:
            for number, line in enumerate(source, start=1):
                line = line.rstrip("\n")
                out.write(f"{line} {predicted_at[number]}\n" if number in predicted_at else f"{line}\n")
    else:
        path = output_dir / "predictions.jsonl"
        with open(path, "w", encoding="utf-8") as out:
            for i, (tokens, predicted) in enumerate(zip(split.tokens, predicted_tags)):
                record = {"tokens": tokens, **({"tags": split.tags[i]} if split.tags else {}), "predicted": predicted}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    logger.info(f"{sum(map(len, predicted_tags)):,} word predictions in {len(predicted_tags):,} sentences written to {path}")
    return path


def write_entities(path, split, predicted_tags: list[list[str]]) -> Path:
    """One JSON line per predicted entity: sentence id, first and last word (inclusive), type, text."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as out:
        for sentence, (tokens, tags) in enumerate(zip(split.tokens, predicted_tags)):
            for kind, start, end in tags_to_spans(tags):
                record = {"sentence": sentence, "start": start, "end": end, "type": kind,
                          "text": " ".join(tokens[start:end + 1])}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    logger.info(f"Entities written to {path}")
    return path
