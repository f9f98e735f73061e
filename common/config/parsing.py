"""From a config file and the command line to the recipe's argument dataclasses.

Values come from a YAML or JSON config file and are overridden by the command line: the file's
entries are turned into flags placed before the user's, and argparse keeps the last value given, so
type conversion and validation are argparse's own. Which file: `--config FILE` if given; else the
recipe's benchmark config, unless the command line names other data, in which case the recipe's
`default.yaml` (so a benchmark's settings, such as AG News's held-out test split, never reach a
user's own files unasked).
"""

import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from transformers import HfArgumentParser

from common.config import arguments
from common.config.combinations import check_combinations
from common.config.errors import OptionError
from common.config.hardware import bf16_supported

# Command-line flags that name the data to use instead of a config's benchmark
DATA_FLAGS = ("train_file", "validation_file", "test_file", "dataset_name", "benchmark")


@dataclass
class Settings:
    """Every setting given to a run (config file or command line) with its final value, and the file read."""

    values: dict
    config_file: str | None


def config_to_flags(config: dict, source: str, known: set[str]) -> list[str]:
    """Turn a config mapping into command-line flags; an unknown key is an error naming the file."""
    flags = []
    for key, value in config.items():
        key = "model_name_or_path" if key == "model" else key
        if key not in known:
            raise OptionError(f"{source}: unknown setting '{key}' (not a model, data or training argument)")
        if value is None:
            continue
        if isinstance(value, dict):
            value = json.dumps(value)
        values = value if isinstance(value, list) else [value]
        flags += [f"--{key}", *(str(v) for v in values)]
    return flags


# Settings that only training reads: a config's values are not applied to evaluation or prediction alone
TRAINING_ONLY = {
    "eval_strategy", "eval_steps", "save_strategy", "save_steps", "save_total_limit", "load_best_model_at_end",
    "metric_for_best_model", "greater_is_better", "early_stopping_patience", "num_train_epochs", "max_steps",
    "learning_rate", "warmup_ratio", "warmup_steps", "weight_decay", "lr_scheduler_type", "gradient_accumulation_steps",
    "per_device_train_batch_size", "class_weights", "l1_lambda", "optim", "optim_args", "train_sampling_strategy",
    "pack_batches", "crf_learning_rate", "cv_folds", "cv_checkpoint_selection", "overwrite_output_dir", "time_budget",
    "resume_from_checkpoint", "max_train_samples", "do_eval", "do_predict",
}

# Each option of common's argument dataclasses -> the dataclass that declares it: a recipe refusing one names it
ARGUMENT_GROUPS = {name: group for group in vars(arguments).values()
                   if isinstance(group, type) and dataclasses.is_dataclass(group) and group.__module__ == arguments.__name__
                   for name in vars(group).get("__annotations__", {})}


def raise_option_error(message: str):
    """Stands in for argparse's error(), which would print the whole usage and exit."""
    raise OptionError(message)


def read_config_file(path) -> dict:
    """A YAML or JSON config file as a mapping; a missing or malformed file is an OptionError naming its line."""
    if not Path(path).is_file():
        raise OptionError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            config = json.load(f) if str(path).endswith(".json") else yaml.safe_load(f)
        except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as error:
            mark = getattr(error, "problem_mark", None)
            line = mark.line + 1 if mark else getattr(error, "lineno", None)
            problem = getattr(error, "problem", None) or getattr(error, "msg", None) or str(error)
            raise OptionError(f"{path}{f', line {line}' if line else ''}: not a valid config file ({problem})") from None
    if not isinstance(config, dict):
        raise OptionError(f"{path}: a config file must hold a mapping of setting: value")
    return config


def flags_given(argv: list[str]) -> dict[str, str | None]:
    """{setting: the value after it} for every `--flag value` or `--flag=value` in argv; `--model` is the short form."""
    given = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            following = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
            given["model_name_or_path" if key == "model" else key] = value or following
    return given


def choose_config(argv: list[str], benchmark_config, default_config) -> str | None:
    """`--config FILE` (taken out of argv); else the benchmark config, unless the command line names other data."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):  # --config=FILE, as argparse takes any flag
            del argv[i]
            if not arg.partition("=")[2]:
                raise OptionError("--config needs a file name")
            return arg.partition("=")[2]
        if arg == "--config":
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                raise OptionError("--config needs a file name")
            path = argv[i + 1]
            del argv[i : i + 2]
            return path
    if benchmark_config is None:
        return str(default_config) if default_config else None
    named = {key: value for key, value in flags_given(argv).items() if key in DATA_FLAGS}
    own_benchmark = read_config_file(benchmark_config).get("benchmark")
    if default_config and any(key != "benchmark" or value != own_benchmark for key, value in named.items()):
        return str(default_config)
    return str(benchmark_config)


def parse_args(dataclass_types, argv: list[str] | None = None, benchmark_config=None, default_config=None,
               rules=()):
    """Parse (config file + command line) into `dataclass_types`; returns the dataclasses, then `Settings`.

    Each dataclass checks its own values (`__post_init__`); then what needs several of them: the recipe's own
    `rules` (functions of the parsed dataclasses), then `check_combinations`. Every refusal is an OptionError
    naming where it came from. (What depends on the data is checked once it is loaded.)

    bf16 is switched on where the hardware runs it natively, unless set explicitly; without a GPU,
    `use_cpu` is set.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(dataclass_types)
    parser.error = raise_option_error  # argparse would print its whole usage and exit; one line says it
    known = {f.name for cls in dataclass_types for f in dataclasses.fields(cls) if f.init}  # the flags it takes

    config_path = choose_config(argv, benchmark_config, default_config)
    config = read_config_file(config_path) if config_path else {}
    flags = config_to_flags(config, config_path, known)

    given = {"model_name_or_path" if key == "model" else key for key in config} | set(flags_given(argv))
    for flag in sorted(given - known):
        owner = ARGUMENT_GROUPS.get(flag)
        if owner is not None:  # (any other unknown flag: argparse's own message, below)
            raise OptionError(f"--{flag} belongs to {owner.__name__} ({owner.__doc__.splitlines()[0].rstrip('.')}); "
                              "this recipe does not take it")
    flags += hardware_flags(given, known)
    if "train_file" in given and "do_train" not in given and "do_train" in known:
        flags += ["--do_train", "True"]  # a config of one's own naming training data trains, as the recipe's own do

    source = f"the settings of {config_path} and the command line" if config_path else "the command line"
    args = parse_into(parser, flags + argv, source)
    if "do_train" in given and not next(a.do_train for a in args if hasattr(a, "do_train")):
        # Evaluation or prediction alone: the config's training settings do not apply (a config's
        # load_best_model_at_end or eval_strategy would otherwise ask for what such a run does not have).
        on_command_line = set(flags_given(argv))
        dropped = {key for key in TRAINING_ONLY if key in config and key not in on_command_line}
        flags = config_to_flags({k: v for k, v in config.items() if k not in dropped}, config_path, known)
        flags += stage_flags(on_command_line) + hardware_flags(given, known)
        args = parse_into(parser, flags + argv, source)
        given = (given - dropped) | {"do_eval", "do_predict"}
    # the recipe's own rules first: they say which of its tasks an option belongs to
    for check in (*rules, check_combinations):
        try:
            check(args)
        except ValueError as error:
            raise OptionError(f"{error} (in {source})") from None
    for a in args:
        if hasattr(a, "data_dir") and a.data_dir is None:
            a.data_dir = os.environ.get("DATA_DIR")
    settings = Settings(final_values(args, given | {"bf16", "use_cpu", "data_dir"}), config_path)
    return (*args, settings)


def hardware_flags(given: set[str], known: set[str]) -> list[str]:
    """bf16 where the hardware runs it natively, and use_cpu without a GPU, unless set (and if the command takes them)."""
    flags = []
    if "bf16" not in given and "fp16" not in given and "bf16" in known and bf16_supported():
        flags += ["--bf16", "True"]
    if "use_cpu" not in given and "use_cpu" in known and not torch.cuda.is_available() and not torch.backends.mps.is_available():
        # Say it: Trainer then runs bf16 on CPU, and under torchrun sets up CPU DDP (gloo) instead of
        # starting a process group it does not use.
        flags += ["--use_cpu", "True"]
    return flags


def stage_flags(on_command_line: set[str]) -> list[str]:
    """Without training: evaluate when validation data is named, predict when a test file is (unless told)."""
    sources = {"dataset_name", "benchmark"} & on_command_line
    flags = []
    if "do_eval" not in on_command_line:
        flags += ["--do_eval", str(bool({"validation_file"} & on_command_line or sources))]
    if "do_predict" not in on_command_line and "test_file" in on_command_line:
        flags += ["--do_predict", "True"]
    return flags


def parse_into(parser, flags: list[str], source: str):
    """The dataclasses parsed from `flags`; what argparse or a dataclass check refuses is an OptionError naming `source`."""
    try:
        return parser.parse_args_into_dataclasses(args=flags)
    except ValueError as error:  # an unknown flag, or a combination TrainingArguments or our checks refuse
        raise OptionError(f"{error} (in {source})") from None


def final_values(args, keys) -> dict:
    """The final value of every setting in `keys`: a config that re-runs the run."""
    values = {}
    for a in args:
        for key in vars(a):
            if key in keys and not key.startswith("_"):
                value = getattr(a, key)
                values[key] = value.value if hasattr(value, "value") else value
    if values.get("report_to") == []:
        values["report_to"] = "none"  # TrainingArguments turns "none" into []
    return values
