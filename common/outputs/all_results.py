"""`all_results.json`, as the reference scripts name it: every split's metrics and the facts of the run."""

import json
import logging
import platform
import sys
from pathlib import Path

import torch
import transformers

from common.config.hardware import precision_name
from common.models.lora import is_lora, parameter_counts
from common.training.output_dir import final_path

logger = logging.getLogger(__name__)


def run_facts(model_args, data_args, trainer, data, label_list: list[str], max_length: int, tokenized=None) -> dict:
    """The facts needed to read (and re-run) a results file. `data`: TextData or TaggedData; `tokenized`: the
    TokenizedSplits of a classification recipe (which texts were cut or windowed)."""
    training_args = trainer.args
    class_weights = trainer.loss.class_weights  # --class_weights, as the training split made them
    return {
        "model": model_args.model_name_or_path,
        "data": data.sources(),
        "sizes": data.sizes(),
        "data_notes": data.notes,
        **({"skipped_rows": data.skipped} if getattr(data, "skipped", None) else {}),
        "labels": label_list,
        "main_metric": training_args.metric_for_best_model,
        "max_seq_length": max_length,
        **({"long_texts": tokenized.long_texts} if getattr(tokenized, "long_texts", None) else {}),
        **({"window_pooling": data_args.window_pooling} if getattr(data_args, "long_text", None) == "windows" else {}),
        "padding": ("max_length" if getattr(data_args, "pad_to_max_length", False)
                    else "packed" if trainer.packs_batches else "dynamic"),
        "train_sampling_strategy": training_args.train_sampling_strategy,
        "precision": precision_name(training_args),
        "seed": training_args.seed,
        "learning_rate": training_args.learning_rate,
        "num_train_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "optim": str(getattr(training_args.optim, "value", training_args.optim)),
        "weight_decay": training_args.weight_decay,
        **({"l1_lambda": training_args.l1_lambda} if getattr(training_args, "l1_lambda", 0) else {}),
        **({"class_weights": class_weights} if class_weights else {}),
        **parameter_counts(trainer.model),
        **({"lora": {"r": model_args.lora_r, "target_modules": sorted(trainer.model.peft_config["default"].target_modules)}}
           if getattr(model_args, "lora_r", 0) and is_lora(trainer.model) else {}),
        **({"gguf_file": model_args.gguf_file} if getattr(model_args, "gguf_file", None) else {}),
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
    logger.info(f"Results written to {final_path(path)}")
    return path
