"""Command-line and config-file arguments shared by every recipe.

A recipe is configured by three dataclasses, as in the reference `run_glue.py`: `ModelArguments`,
`DataArguments` and `TrainingArguments` (every flag of `transformers.TrainingArguments`). Values come
from a YAML or JSON config file (`--config FILE`, or the recipe's default) and are overridden by the
command line: the file's entries are turned into flags placed before the user's, and argparse keeps
the last value given, so type conversion and validation are argparse's own.
"""

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
import datasets
import transformers
from transformers import HfArgumentParser, TrainingArguments

from common.data import DataError

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
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
class DataSourceArguments:
    """Where the data comes from, and how much of it: shared by every recipe."""

    benchmark: str | None = field(
        default=None, metadata={"help": "A benchmark folder under --data_dir: sst2, ag_news, chnsenticorp, conll2003."}
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


@dataclass
class DataArguments(DataSourceArguments):
    """Text classification: CSV, TSV, JSON or JSON-lines files with a text and a label column."""

    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    text_pair_column: str | None = field(default=None, metadata={"help": "Column holding the second text of a pair."})
    label_column: str = field(default="label", metadata={"help": "Column holding the label(s)."})
    multi_label: bool = field(default=False, metadata={"help": "Each row may carry several labels."})
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


@dataclass
class TokenDataArguments(DataSourceArguments):
    """Token classification: CoNLL column files, JSON lines with tokens and tags, or Hub datasets."""

    tag_column: int = field(default=-1, metadata={"help": "CoNLL files: the column holding the tag (default: last)."})
    tag_scheme: str = field(
        default="auto", metadata={"help": "Scheme of the input tags, converted to IOB2 on load.", "choices": ["auto", "iob1", "iob2", "bioes"]}
    )
    label_all_tokens: bool = field(
        default=False, metadata={"help": "Train on every subword (continuations get I- tags), not just the first."}
    )
    stride: int = field(
        default=32, metadata={"help": "Long sentences: subwords shared by consecutive windows."}
    )


@dataclass
class ChineseDataArguments(DataArguments):
    """The Chinese recipe: text classification (DataArguments) or character-level NER."""

    task: str = field(default="classification", metadata={"help": "What to train.", "choices": ["classification", "ner"]})
    tag_scheme: str = field(
        default="auto", metadata={"help": "NER, character-per-line files: scheme of the tags, converted to IOB2.",
                                  "choices": ["auto", "iob1", "iob2", "bioes"]}
    )
    stride: int = field(default=32, metadata={"help": "NER, long texts: tokens shared by consecutive windows."})
    overlapping_spans: str = field(
        default="error", metadata={"help": "NER, span files: overlapping spans are an error, or the shorter one is "
                                           "dropped (and logged).", "choices": ["error", "keep_longest"]}
    )


@dataclass
class ScratchArguments:
    """A small model trained from scratch (no download): a character vocabulary from the training texts."""

    scratch_model_type: str | None = field(
        default=None, metadata={"help": "Build a new model of this type (ernie, bert) instead of loading --model."}
    )
    scratch_layers: int = field(default=2, metadata={"help": "Transformer layers of the new model."})
    scratch_hidden_size: int = field(default=128, metadata={"help": "Hidden size (feed-forward: 4x)."})
    scratch_heads: int = field(default=2, metadata={"help": "Attention heads."})
    vocab_min_count: int = field(default=1, metadata={"help": "Keep characters seen at least this often in training."})


@dataclass
class RecipeTrainingArguments(TrainingArguments):
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
    pack_batches: bool = field(
        default=False, metadata={"help": "Token classification: put the sentences of each training batch end to end "
                                         "in shared rows (own positions, 4-D attention mask) instead of padding them. "
                                         "Checked on the model before training; falls back to padding if it changes "
                                         "the logits."}
    )


def bf16_supported() -> bool:
    """bf16 pays off on GPUs that have it and on CPUs with AVX-512 BF16 or AMX; elsewhere it is emulated and slow."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def precision_name(training_args) -> str:
    """The precision Trainer really trains in: its --bf16/--fp16 flags, else `accelerate launch`'s mixed_precision."""
    return "fp32" if training_args.mixed_precision == "no" else training_args.mixed_precision


def warn_if_accelerate_starved_threads() -> None:
    """`accelerate launch` without a GPU sets OMP_NUM_THREADS=1 unless told otherwise: say it costs cores."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cores = (os.cpu_count() or 1) // processes
    if "ACCELERATE_MIXED_PRECISION" in os.environ and not torch.cuda.is_available() and torch.get_num_threads() < cores:
        logger.warning(f"This process runs {torch.get_num_threads()} CPU thread(s) of the {cores} it could use "
                       f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, accelerate launch's default without a "
                       f"GPU): add --num_cpu_threads_per_process {cores} to accelerate launch, or use python/torchrun.")


def config_to_flags(config: dict, source: str, known: set[str]) -> list[str]:
    """Turn a config mapping into command-line flags; an unknown key is an error naming the file."""
    flags = []
    for key, value in config.items():
        key = "model_name_or_path" if key == "model" else key
        if key not in known:
            raise SystemExit(f"{source}: unknown setting '{key}' (not a model, data or training argument)")
        if value is None:
            continue
        if isinstance(value, dict):
            value = json.dumps(value)
        values = value if isinstance(value, list) else [value]
        flags += [f"--{key}", *(str(v) for v in values)]
    return flags


def read_config_file(path: str) -> dict:
    if not Path(path).is_file():
        raise SystemExit(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        config = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
    if not isinstance(config, dict):
        raise SystemExit(f"{path}: a config file must hold a mapping of setting: value")
    return config


def parse_args(default_config: str | None = None, argv: list[str] | None = None, dataclass_types=None):
    """Parse (config file + command line) into the recipe's dataclasses.

    `--config FILE` picks the config (else `default_config`); flags after it override its values.
    bf16 is switched on automatically where the hardware runs it natively, unless set explicitly.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    dataclass_types = dataclass_types or (ModelArguments, DataArguments, RecipeTrainingArguments)
    parser = HfArgumentParser(dataclass_types)
    known = {action.dest for action in parser._actions}

    config_path = default_config
    if "--config" in argv:
        i = argv.index("--config")
        config_path = argv[i + 1] if i + 1 < len(argv) else None
        if config_path is None:
            raise SystemExit("--config needs a file name")
        del argv[i : i + 2]
    config = read_config_file(config_path) if config_path else {}
    flags = config_to_flags(config, config_path, known)

    given = set(config) | {a.lstrip("-").split("=")[0] for a in argv if a.startswith("--")}
    if "bf16" not in given and "fp16" not in given and bf16_supported():
        flags += ["--bf16", "True"]
    if "use_cpu" not in given and not torch.cuda.is_available() and not torch.backends.mps.is_available():
        # Say it: Trainer then runs bf16 on CPU, and under torchrun sets up CPU DDP (gloo) instead of
        # starting a process group it does not use.
        flags += ["--use_cpu", "True"]

    args = parser.parse_args_into_dataclasses(args=flags + argv)
    for a in args:
        if hasattr(a, "data_dir") and a.data_dir is None:
            a.data_dir = os.environ.get("DATA_DIR")
    given = {"model_name_or_path" if key == "model" else key for key in given} | {"bf16", "use_cpu", "data_dir"}
    args[-1].recipe_config = resolved_config(args, given)
    return args


def resolved_config(args, keys) -> dict:
    """The final value of every setting given (config file or command line): a config that re-runs the run."""
    config = {}
    for a in args:
        for key in vars(a):
            if key in keys and not key.startswith("_"):
                value = getattr(a, key)
                config[key] = value.value if hasattr(value, "value") else value
    if config.get("report_to") == []:
        config["report_to"] = "none"  # TrainingArguments turns "none" into []
    return config


def setup_logging(training_args) -> None:
    """Our messages at INFO on the main process (WARNING on the others); the libraries at --log_level."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stderr)],
                        level=logging.INFO if training_args.should_log else logging.WARNING, force=True)
    library_level = training_args.get_process_log_level()
    datasets.utils.logging.set_verbosity(library_level)
    transformers.utils.logging.set_verbosity(library_level)
    warn_if_accelerate_starved_threads()


def run_main(main) -> None:
    """Run a recipe's main(); bad input ends it with the message alone and exit status 2."""
    try:
        main()
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
