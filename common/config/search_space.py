"""The search space of `--hp_search_trials`: the default one, or a YAML file of one's own (`--hp_search_space`).

A space file maps each training setting to its range, in Optuna's own terms:

    learning_rate: {type: float, low: 1.0e-5, high: 5.0e-4, log: true}
    per_device_train_batch_size: {type: categorical, choices: [16, 32]}
    num_train_epochs: {type: int, low: 1, high: 3}
    warmup_ratio: {type: float, low: 0.0, high: 0.2}

Any TrainingArguments field can be searched; `warmup_ratio` is the share of the steps spent warming up
(transformers 5 takes it as a `warmup_steps` below 1). The file is read and checked when the command is
parsed, so that a mistake stops the run before any data is read.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

KINDS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"}, "categorical": {"choices"}}
ALIASES = {"warmup_ratio": "warmup_steps"}  # a share of the steps: TrainingArguments takes it as warmup_steps < 1

DEFAULT_SPACE = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 5e-4, "log": True},
    "per_device_train_batch_size": {"type": "categorical", "choices": [16, 32, 64]},
    "num_train_epochs": {"type": "int", "low": 1, "high": 4},
    "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2},
    "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
}


@dataclass
class Parameter:
    """One searched setting: its name in the space, the training argument it sets, and its range."""

    name: str
    argument: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list | None = None

    def suggest(self, trial):
        """This parameter's value for an Optuna trial."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)


def read_space(path: str | None, training_fields: set[str]) -> list[Parameter]:
    """The parameters of a space file (the default space without one); a mistake is a ValueError naming the file."""
    if path is None:
        return parse_space(DEFAULT_SPACE, "the default search space", training_fields)
    if not Path(path).is_file():
        raise ValueError(f"--hp_search_space {path}: no such file")
    try:
        space = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        mark = getattr(error, "problem_mark", None)
        raise ValueError(f"{path}{f', line {mark.line + 1}' if mark else ''}: not a valid YAML file") from None
    return parse_space(space, str(path), training_fields)


def parse_space(space, source: str, training_fields: set[str]) -> list[Parameter]:
    """Check a space mapping: known settings, known types and keys, numbers, low not above high, log above 0."""
    if not isinstance(space, dict) or not space:
        raise ValueError(f"{source}: a search space maps each setting to its range, e.g. "
                         "learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}")
    parameters = []
    for name, spec in space.items():
        where = f"{source}: {name}"
        argument = ALIASES.get(name, name)
        if argument not in training_fields:
            raise ValueError(f"{where}: unknown parameter (the space holds training settings, such as learning_rate, "
                             "per_device_train_batch_size, num_train_epochs, warmup_ratio, weight_decay)")
        if not isinstance(spec, dict) or spec.get("type") not in KINDS:
            raise ValueError(f"{where}: give a mapping with type float, int or categorical")
        kind = spec["type"]
        unknown = set(spec) - KINDS[kind] - {"type"}
        if unknown:
            raise ValueError(f"{where}: {', '.join(sorted(unknown))} is not a key of a {kind} range "
                             f"(keys: {', '.join(sorted(KINDS[kind]))})")
        if kind == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise ValueError(f"{where}: a categorical parameter needs a non-empty list of choices")
            parameters.append(Parameter(name, argument, kind, choices=spec["choices"]))
            continue
        low, high = (number(spec.get(key), f"{where}: {key}", kind) for key in ("low", "high"))
        step = number(spec["step"], f"{where}: step", kind) if spec.get("step") is not None else None
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise ValueError(f"{where}: log must be true or false, not {log!r}")
        if low > high:
            raise ValueError(f"{where}: low {low} is above high {high}")
        if log and low <= 0:
            raise ValueError(f"{where}: a log-scale range must start above 0 (low is {low})")
        if log and step is not None:
            raise ValueError(f"{where}: a range has either log or step, not both")
        if step is not None and step <= 0:
            raise ValueError(f"{where}: step must be above 0 (it is {step})")
        parameters.append(Parameter(name, argument, kind, low, high, log, step))
    return parameters


def number(value, where: str, kind: str):
    """A range's bound as a number: YAML reads 1e-5 (without a dot) as a string, so strings are converted too."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{where}: missing or not a number")
    try:
        converted = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(converted):
        raise ValueError(f"{where}: {value!r} is not a finite number")
    if kind == "int":
        if converted != int(converted):
            raise ValueError(f"{where}: {value!r} is not a whole number (the parameter is an int)")
        return int(converted)
    return converted
