"""What a run leaves in its output directory besides the model: results, run facts and predictions."""

import json
import logging
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import transformers

from common.data import RawData
from common.metrics import decisions, probabilities

logger = logging.getLogger(__name__)


def run_facts(model_args, data_args, training_args, raw: RawData, label_list: list[str], max_length: int) -> dict:
    """The facts needed to read (and re-run) a results file."""
    return {
        "model": model_args.model_name_or_path,
        "data": {name: split.source for name, split in raw.splits.items()},
        "sizes": {name: len(split.frame) for name, split in raw.splits.items()},
        "data_notes": raw.notes,
        "labels": label_list,
        "max_seq_length": max_length,
        "padding": "max_length" if data_args.pad_to_max_length else "dynamic",
        "train_sampling_strategy": training_args.train_sampling_strategy,
        "precision": "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32",
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
