"""The argument dataclasses of every recipe, named and documented as in the reference `run_glue.py`/`run_ner.py`.

A recipe parses `ModelArguments` (`TaggerModelArguments` with a token head), one data dataclass
(`TextDataArguments` or `TokenDataArguments`, or its own built from these parts), `RecipeTrainingArguments`
(every flag of `TrainingArguments`) and, for classification, `AnalysisArguments`. Each checks its own
ranges when parsed; what needs two of them is checked in common/config/combinations.py, also when parsed.
"""

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from transformers import TrainingArguments

from common.config.search_space import read_space

TAG_SCHEMES = ["auto", "iob1", "iob2", "bioes"]


def check_at_least(args, lowest: dict[str, float]) -> None:
    """Refuse a setting below its lowest sensible value (None means unset and passes)."""
    for name, low in lowest.items():
        value = getattr(args, name)
        if value is not None and value < low:
            raise ValueError(f"--{name} {value} must be at least {low}")


def parse_layers(text: str) -> list[int]:
    """--student_layers '0,2,4' -> [0, 2, 4]: distinct layer numbers in ascending order (the order they run in)."""
    try:
        layers = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--student_layers {text}: give layer numbers separated by commas, e.g. 0,2,4") from None
    if any(b <= a for a, b in zip(layers, layers[1:])) or min(layers) < 0:
        raise ValueError(f"--student_layers {text}: give distinct layer numbers from 0 up, in ascending order")
    return layers


SGD_ARGS = ("momentum", "dampening", "weight_decay", "nesterov")  # what Trainer passes on to torch.optim.SGD


def check_optim_args(optim, optim_args: str | None) -> None:
    """--optim_args for SGD: Trainer silently drops keys it does not know (a misspelt momentum would be 0)."""
    if str(getattr(optim, "value", optim)) != "sgd" or not optim_args:
        return
    for item in optim_args.replace(" ", "").split(","):
        key, _, value = item.partition("=")
        if key not in SGD_ARGS:
            raise ValueError(f"--optim_args {optim_args}: {key!r} is not an SGD setting ({', '.join(SGD_ARGS)})")
        if key != "nesterov":
            try:
                float(value)
            except ValueError:
                raise ValueError(f"--optim_args {optim_args}: {key} must be a number, not {value!r}") from None


@dataclass
class ModelSourceArguments:
    """Which pretrained model to start from and how to load it (as in the reference scripts)."""

    model_name_or_path: str = field(
        default="bert-base-uncased",
        metadata={"aliases": ["--model"], "help": "Hub model id or local folder (short form: --model)."},
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer, if not the model's own."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are stored."})
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of the model."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run model code from the Hub. Off by default: only enable for code you trust."}
    )


@dataclass
class ModelArguments(ModelSourceArguments):
    """ModelSourceArguments, GGUF checkpoints, and LoRA adapters."""

    gguf_file: str | None = field(
        default=None, metadata={"help": "Start from a GGUF checkpoint: its file name inside the --model folder (or its "
                                        "path); dequantized to float on load. The output is a normal safetensors folder."}
    )
    lora_r: int = field(
        default=0, metadata={"help": "Train LoRA adapters of this rank (peft) instead of every weight; 0: full "
                                     "fine-tuning. The head stays fully trainable; the output holds the merged model."}
    )
    lora_alpha: float | None = field(default=None, metadata={"help": "LoRA scaling alpha (default: 2 x --lora_r)."})
    lora_dropout: float | None = field(default=None, metadata={"help": "Dropout on the LoRA inputs (default 0.05)."})
    lora_target_modules: str | None = field(
        default=None, metadata={"help": "Comma-separated module names that get adapters (default per architecture: "
                                        "attention projections)."}
    )
    student_layers: str | None = field(
        default=None, metadata={"help": "Keep only these transformer layers of --model, e.g. 0,2,4 (a student cut "
                                        "from a teacher, DistilBERT-style: its embeddings, these layers and its head)."}
    )

    def __post_init__(self):
        check_at_least(self, {"lora_r": 0})
        if self.student_layers is not None:
            parse_layers(self.student_layers)
        if not self.lora_r:
            given = [f"--{name}" for name in ("lora_alpha", "lora_dropout", "lora_target_modules")
                     if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} set without LoRA: add --lora_r (e.g. 8) or remove them")


@dataclass
class TaggerModelArguments(ModelArguments):
    """A token classifier's model: ModelArguments, and its head (per-token scores, or a CRF over them)."""

    crf: bool = field(
        default=False, metadata={"help": "A CRF over the words' scores: trained on whole tag sequences, decoded by "
                                         "Viterbi with the transitions IOB2 forbids made impossible."}
    )


@dataclass
class DataSourceArguments:
    """Where the data comes from, and how much of it: shared by every recipe."""

    benchmark: str | None = field(
        default=None, metadata={"help": "A benchmark folder under --data_dir (the recipe's configs/ name theirs; "
                                        "docs/data.md lists them)."}
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder holding the benchmark data (default: $DATA_DIR, then ../shared/data)."}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "A dataset on the Hub, loaded with load_dataset."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's configuration."})
    train_file: str | None = field(default=None, metadata={"help": "Training file."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation file (same format)."})
    test_file: str | None = field(default=None, metadata={"help": "Test file for --do_predict (labels optional)."})
    max_seq_length: int | None = field(
        default=None, metadata={"help": "Maximum input length in tokens (default: the model's)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep the first N training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep the first N validation examples."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Keep the first N test examples."})
    encoding: str = field(
        default="utf-8", metadata={"help": "Text encoding of the data files (e.g. gbk, latin-1); a byte-order mark is "
                                           "skipped."}
    )
    stride: int = field(
        default=32, metadata={"help": "Inputs longer than max_seq_length read in overlapping windows (NER always, "
                                      "classification with --long_text windows): tokens shared by consecutive windows."}
    )

    def __post_init__(self):
        check_at_least(self, {"max_seq_length": 1, "max_train_samples": 1, "max_eval_samples": 1,
                              "max_predict_samples": 1, "stride": 0})


@dataclass
class TextDataArguments(DataSourceArguments):
    """Text classification: CSV, TSV, JSON or JSON-lines files with a text and a label column."""

    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Column holding the second text of a pair."})
    label_column: str = field(default="label", metadata={"help": "Column holding the label(s)."})
    multi_label: bool = field(default=False, metadata={"help": "Each row may carry several labels."})
    regression: bool | None = field(
        default=None, metadata={"help": "The label is a number to predict (a score such as STS-B's 0-5): one output, "
                                        "MSE loss, Pearson/Spearman/MSE. Default: yes when every training label is a "
                                        "number and some have fractions (or the benchmark is a regression)."}
    )
    label_separator: str | None = field(
        default=None, metadata={"help": "Multi-label only: labels joined in one string, e.g. ',' for 'sports,tech'."}
    )
    validation_split: float = field(
        default=0.1, metadata={"help": "Fraction of training rows held out (stratified) when there is no validation set."}
    )
    test_split: float = field(
        default=0.0, metadata={"help": "Fraction of training rows held out as a test set when there is none."}
    )
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "Pad every input to max_seq_length (slow; the reference scripts' default)."}
    )
    overwrite_cache: bool = field(default=False, metadata={"help": "Tokenize again even if a cached copy exists."})
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Tokenize with N processes (the rows in their order; the cache is shared "
                                        "with runs of any N)."}
    )
    skip_bad_rows: bool = field(
        default=False, metadata={"help": "Leave out rows that fail a check (empty text, missing label, wrong number "
                                          "of fields, invalid JSON line) instead of stopping; each is listed by line "
                                          "in the log, all_results.json and the model card."}
    )

    long_text: str = field(
        default="truncate", metadata={"help": "Texts longer than max_seq_length: 'truncate' (read the start only), "
                                              "'head_tail' (the first --head_tokens and the last tokens) or 'windows' "
                                              "(overlapping windows, a document predicted from all of them).",
                                      "choices": ["truncate", "head_tail", "windows"]}
    )
    head_tokens: int | None = field(
        default=None, metadata={"help": "--long_text head_tail: tokens kept from the start (default 128, or a quarter "
                                        "of the window when 128 does not fit); the rest of the window is the end."}
    )
    window_pooling: str = field(
        default="mean", metadata={"help": "--long_text windows: a document's logits are the mean or the max of its "
                                          "windows' logits.", "choices": ["mean", "max"]}
    )

    def __post_init__(self):
        super().__post_init__()
        check_at_least(self, {"head_tokens": 0, "preprocessing_num_workers": 1})
        for name in ("validation_split", "test_split"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"--{name} {getattr(self, name)} must be at least 0 and below 1")
        if self.validation_split + self.test_split >= 1:
            raise ValueError(f"--validation_split {self.validation_split} and --test_split {self.test_split} leave "
                             "no training rows")


@dataclass
class AnalysisArguments:
    """After a classification run: explanations of validation texts, and metrics per group of rows."""

    explain_examples: int = field(
        default=0, metadata={"help": "After training, explain N validation texts (the most confident correct and "
                                     "wrong ones of each class) with Integrated Gradients: explanations/ in the "
                                     "output folder (HTML, PNG, JSON)."}
    )
    group_column: str | None = field(
        default=None, metadata={"help": "A column of the validation/test file naming each row's group: metrics per "
                                        "group with bootstrap intervals, and the gaps between groups (fairlearn)."}
    )

    def __post_init__(self):
        check_at_least(self, {"explain_examples": 0})


@dataclass
class SearchArguments:
    """A hyperparameter search before training (Optuna): trials, space, pruning, and a study shared through a database."""

    hp_search_trials: int | None = field(
        default=None, metadata={"help": "Search the training settings first: N trials in all (over every worker of a "
                                        "shared study), each a fresh model scored on the validation set by "
                                        "--metric_for_best_model; then the best settings are trained as usual."}
    )
    hp_search_space: str | None = field(
        default=None, metadata={"help": "A YAML file of the settings to search and their ranges (default: learning "
                                        "rate on a log scale, batch size, epochs, warm-up ratio, weight decay)."}
    )
    hp_search_storage: str | None = field(
        default=None, metadata={"help": "A database URL for the study (sqlite:///study.db, postgresql://...): workers "
                                        "on one or many machines share it, and running the command again continues "
                                        "it. Default: in memory, for this run alone."}
    )
    hp_search_study: str = field(default="hp_search", metadata={"help": "The study's name in --hp_search_storage."})
    hp_search_pruner: str = field(
        default="median", metadata={"help": "Stop trials whose evaluations fall behind: 'median' (below the median of "
                                            "earlier trials at the same point), 'hyperband', or 'none'.",
                                    "choices": ["median", "hyperband", "none"]}
    )
    hp_search_train_best: bool = field(
        default=True, metadata={"help": "After the search, train the best settings into --output_dir (False: write "
                                        "the search's results only, e.g. on all but one worker of a shared study)."}
    )

    def __post_init__(self):
        check_at_least(self, {"hp_search_trials": 1})
        given = [f"--{name}" for name in ("hp_search_space", "hp_search_storage") if getattr(self, name) is not None]
        if given and not self.hp_search_trials:
            raise ValueError(f"{', '.join(given)} set without a search: add --hp_search_trials N")
        if self.hp_search_trials:
            read_space(self.hp_search_space, {f.name for f in fields(TrainingArguments)})


@dataclass
class DistillationArguments:
    """Knowledge distillation from a fine-tuned teacher: its logits, computed once per training row, as soft targets."""

    teacher_model: str | None = field(
        default=None, metadata={"help": "A fine-tuned classifier (an output folder of this recipe) over the same "
                                        "labels: the student learns from its softened predictions as well."}
    )
    distill_temperature: float | None = field(
        default=None, metadata={"help": "Softmax temperature T of teacher and student in the distillation loss "
                                        "(default 2; higher: more weight on the teacher's small probabilities)."}
    )
    distill_alpha: float | None = field(
        default=None, metadata={"help": "Loss = alpha x cross-entropy on the labels + (1 - alpha) x T^2 x KL(teacher "
                                        "|| student) (default 0.5; 1: the labels alone)."}
    )

    def __post_init__(self):
        given = [f"--{name}" for name in ("distill_temperature", "distill_alpha") if getattr(self, name) is not None]
        if given and not self.teacher_model:
            raise ValueError(f"{', '.join(given)} set without a teacher: add --teacher_model DIR")
        self.distill_temperature = 2.0 if self.distill_temperature is None else self.distill_temperature
        self.distill_alpha = 0.5 if self.distill_alpha is None else self.distill_alpha
        if self.distill_temperature <= 0:
            raise ValueError(f"--distill_temperature {self.distill_temperature} must be above 0")
        if not 0 <= self.distill_alpha <= 1:
            raise ValueError(f"--distill_alpha {self.distill_alpha} must be between 0 and 1")


@dataclass
class SingleLabelTextDataArguments(TextDataArguments):
    """Text classification with one label a row: the multi-label flags are refused, not silently ignored."""

    def __post_init__(self):
        super().__post_init__()
        refuse_multi_label(self)


def refuse_multi_label(args) -> None:
    """A recipe that trains single-label classifiers does not take --multi_label, --label_separator or
    --regression; its labels are classes even when they are numbers with fractions."""
    given = [f"--{name}" for name in ("multi_label", "label_separator", "regression") if getattr(args, name)]
    if given:
        raise ValueError(f"{' and '.join(given)}: this recipe trains single-label classifiers; use "
                         "recipes/text_classification for multi-label data or a score to predict (regression)")
    args.regression = False


@dataclass
class TaggingArguments:
    """Entity tags, on words or on characters: the input's tag scheme."""

    tag_scheme: str = field(
        default="auto", metadata={"help": "Scheme of the input tags, converted to IOB2 on load.", "choices": TAG_SCHEMES}
    )
    def __post_init__(self):
        if hasattr(super(), "__post_init__"):  # the data dataclass it is mixed with checks its own
            super().__post_init__()


@dataclass
class TokenDataArguments(TaggingArguments, DataSourceArguments):
    """Token classification: CoNLL column files, JSON lines with tokens and tags, or Hub datasets."""

    tag_column: int = field(default=-1, metadata={"help": "CoNLL files: the column holding the tag (default: last)."})
    label_all_tokens: bool = field(
        default=False, metadata={"help": "Train on every subword (continuations get I- tags), not just the first."}
    )


TIME_BUDGET_SCHEDULES = ("linear", "cosine", "constant")  # what a schedule over a share of the time can be
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds in '90s', '30m', '1.5h' (or a plain number of seconds); ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--time_budget {text}: give a duration above 0 such as 90s, 30m or 1.5h")
    return float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]


@dataclass
class RecipeTrainingArguments(TrainingArguments):
    """Every TrainingArguments flag, with the recipes' defaults (length-grouped batches, no pinned memory
    without a GPU) and their own training controls, each range-checked when parsed."""

    # Length-grouped batches need far less padding than random ones: the recipes' default.
    train_sampling_strategy: str = field(
        default="group_by_length", metadata=TrainingArguments.__dataclass_fields__["train_sampling_strategy"].metadata
    )
    # Pinned host memory only helps copies to a GPU; without one it just warns.
    dataloader_pin_memory: bool = field(
        default=torch.cuda.is_available(), metadata=TrainingArguments.__dataclass_fields__["dataloader_pin_memory"].metadata
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after N evaluations without improvement of metric_for_best_model."}
    )
    class_weights: str | None = field(
        default=None, metadata={"help": "Weigh the loss per class: 'balanced' (n / (classes x n_class), from the "
                                         "training split; multi-label: negatives / positives per label), weights "
                                         "in label order 'w1,w2,...', or 'name=w,...' (others 1)."}
    )
    l1_lambda: float = field(
        default=0.0, metadata={"help": "L1 penalty lambda x sum|w| on the weights weight decay covers (not biases "
                                       "or norm weights), added to the loss; logged as l1_penalty."}
    )
    cv_folds: int | None = field(
        default=None, metadata={"help": "k-fold cross-validation over the training rows (NER: sentences) "
                                        "instead of one run: a fresh model per fold, results in cv_results.json."}
    )
    # None means unset, so that a run without --cv_folds or --crf can refuse these instead of ignoring them.
    cv_checkpoint_selection: str | None = field(
        default=None, metadata={"help": "With --cv_folds: 'none' (the default) scores each fold's last step; "
                                        "'validation' lets the validation set choose the checkpoint (never the "
                                        "held-out fold).", "choices": ["none", "validation"]}
    )
    crf_learning_rate: float | None = field(
        default=None, metadata={"help": "With --crf: learning rate of the CRF's transitions (default 5e-3: they start "
                                        "at 0 and must move by whole units; at an encoder's 5e-5 they barely would)."}
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Train into an --output_dir that holds an earlier run's files, removing them "
                                         "first (without it such a run stops, unless it resumes from a checkpoint)."}
    )
    time_budget: str | None = field(
        default=None, metadata={"help": "Train for this long (90s, 30m, 1.5h) instead of to a step count: the "
                                        "learning rate follows the share of the time spent (--lr_scheduler_type "
                                        "linear, cosine or constant; a --warmup_steps share), and training stops "
                                        "with a save at the budget. --max_steps or the epochs still cap the steps."}
    )
    pack_batches: bool = field(
        default=False, metadata={"help": "Token classification: put the sentences of each training batch end to end "
                                         "in shared rows (own positions, 4-D attention mask) instead of padding them. "
                                         "Checked on the model before training; falls back to padding if it changes "
                                         "the logits."}
    )

    def __post_init__(self):
        if self.output_dir is not None and Path(self.output_dir).is_file():
            raise ValueError(f"--output_dir {self.output_dir} is a file, not a folder")
        # TrainingArguments checks few ranges; these values would crash deep inside Trainer or train nothing.
        check_at_least(self, {"per_device_train_batch_size": 1, "per_device_eval_batch_size": 1,
                              "gradient_accumulation_steps": 1, "learning_rate": 0, "weight_decay": 0,
                              "max_grad_norm": 0, "seed": 0, "data_seed": 0, "save_total_limit": 1,
                              "early_stopping_patience": 1, "dataloader_num_workers": 0, "eval_accumulation_steps": 1,
                              "l1_lambda": 0, "cv_folds": 2,
                              "crf_learning_rate": 0})
        for name in ("save_steps", "eval_steps", "logging_steps"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"--{name} {getattr(self, name)} must be above 0")
        check_optim_args(self.optim, self.optim_args)
        if self.do_train and (self.max_steps == 0 or self.max_steps < -1):
            raise ValueError(f"--max_steps {self.max_steps} trains for {max(self.max_steps, 0)} steps: give a number "
                             "above 0, or -1 (the default) to train for --num_train_epochs")
        if self.do_train and self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ValueError(f"--num_train_epochs {self.num_train_epochs} (with no --max_steps) trains for 0 steps: "
                             "give a number above 0, or --do_train False to only evaluate or predict")
        if self.time_budget is not None:
            parse_duration(self.time_budget)  # a bad duration stops here, in one line
            kind = getattr(self.lr_scheduler_type, "value", self.lr_scheduler_type)
            if kind not in TIME_BUDGET_SCHEDULES:
                raise ValueError(f"--time_budget: the learning rate follows the time spent with --lr_scheduler_type "
                                 f"{', '.join(TIME_BUDGET_SCHEDULES)}, not {kind}")
            if self.resume_from_checkpoint is not None:
                raise ValueError("--time_budget and --resume_from_checkpoint do not combine: a resumed run's clock "
                                 "would start again, so its schedule would not continue the budget's")
        if self.greater_is_better is None and (self.metric_for_best_model or "").removeprefix("eval_") == "mse":
            self.greater_is_better = False  # Trainer's own rule knows only names ending in "loss" as errors
        super().__post_init__()
