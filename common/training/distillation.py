"""The teacher's side of distillation (`--teacher_model`): its logits for every training row, computed once.

The teacher predicts the training split before training starts, and its logits become a column of
the training rows, so every epoch (and every trial of a search) reuses them instead of running the
teacher again; the student's loss on them is `distillation_loss` (common/training/losses.py).
A teacher must be a fine-tuned sequence classifier over this run's labels in this run's order (its
logits are read by position). Its own tokenizer reads the texts, unless it tokenizes them exactly as
the student's does, when the student's tokenized rows are reused.
"""

import dataclasses
import logging
import re
import time

import numpy as np
from transformers import AutoConfig, AutoModelForSequenceClassification

from common.config.arguments import ModelSourceArguments, RecipeTrainingArguments
from common.config.errors import OptionError
from common.models.tokenizer import LOAD_ERRORS, load_error, load_tokenizer
from common.tokens.tokenization import max_input_length, tokenization_settings, tokenize_splits
from common.training.losses import TEACHER_LOGITS
from common.training.stages import build_trainer

logger = logging.getLogger(__name__)


def load_teacher(path: str, labels: list[str]):
    """The fine-tuned teacher classifier at `path`, checked to be one and to share this run's label map."""
    try:
        config = AutoConfig.from_pretrained(path)
    except LOAD_ERRORS as error:
        raise OptionError(f"--teacher_model {path}: not a trained model ({load_error(path, error)})") from None
    architectures = config.architectures or []
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        raise OptionError(f"--teacher_model {path}: a {', '.join(architectures) or config.model_type} model, not a "
                          "sequence classifier: give the output folder of a classification run")
    names = [config.id2label[i] for i in range(len(config.id2label or {}))]
    if all(re.fullmatch(r"LABEL_\d+", name) for name in names):
        raise OptionError(f"--teacher_model {path}: its config names no labels, so its head was never trained")
    if config.problem_type == "multi_label_classification":
        raise OptionError(f"--teacher_model {path}: a multi-label classifier; distillation softens one softmax")
    if names != labels:
        raise OptionError(f"--teacher_model {path}: its labels {names} are not this run's {labels} (same names in "
                          "the same order): distil from a teacher trained on this label set")
    try:
        return AutoModelForSequenceClassification.from_pretrained(path)
    except LOAD_ERRORS as error:
        raise OptionError(f"--teacher_model {path}: cannot load its weights ({load_error(path, error)})") from None


def same_tokenization(first, second, texts: list[str]) -> bool:
    """Whether two tokenizers share a vocabulary and split these texts into the same ids."""
    return first.get_vocab() == second.get_vocab() and first(texts)["input_ids"] == second(texts)["input_ids"]


def add_teacher_logits(tokenized, raw, labels: list[str], tokenizer, distill_args, data_args, training_args):
    """The training rows with a column of the teacher's logits (float32, one list per row, in row order)."""
    teacher = load_teacher(distill_args.teacher_model, labels)
    teacher_tokenizer = load_tokenizer(ModelSourceArguments(model_name_or_path=distill_args.teacher_model))
    train = raw.splits["train"]
    sample = train.frame[raw.text_column].head(100).tolist()
    rows = tokenized["train"]
    if not same_tokenization(teacher_tokenizer, tokenizer, sample):
        teacher_length = max_input_length(teacher_tokenizer, teacher.config, data_args.max_seq_length)
        rows = tokenize_splits(dataclasses.replace(raw, splits={"train": train}), teacher_tokenizer, teacher_length,
                               **tokenization_settings(data_args))["train"]
    # The teacher only predicts: this run's batch size and precision, none of its training or logging settings.
    args = RecipeTrainingArguments(output_dir=training_args.output_dir, do_train=False, report_to="none",
                                   per_device_eval_batch_size=training_args.per_device_eval_batch_size,
                                   bf16=training_args.bf16, fp16=training_args.fp16, use_cpu=training_args.use_cpu)
    start = time.perf_counter()
    logits = build_trainer(teacher, args, teacher_tokenizer).predict(rows).predictions.astype(np.float32)
    agreement = float((logits.argmax(-1) == np.asarray(tokenized["train"]["labels"])).mean())
    logger.info(f"Teacher {distill_args.teacher_model}: logits for {len(logits):,} training rows in "
                f"{time.perf_counter() - start:.0f} s, computed once for every epoch; it agrees with "
                f"{agreement:.1%} of their labels")
    return tokenized["train"].add_column(TEACHER_LOGITS, logits.tolist())
