"""`--hp_search_trials N`: an Optuna search over the training settings, before the run trains the best of them.

Each trial is an ordinary training of a fresh model (the recipe's own `new_trainer(args)`, with the
trial's settings in a copy of the run's arguments), scored on the validation set by
`--metric_for_best_model` in its direction. Each evaluation is reported to the trial, at the number of
training examples seen so far (so that trials with different batch sizes are compared at equal data),
and the pruner stops a trial that falls behind. With `--load_best_model_at_end` a trial's objective is
its best evaluation, the one the final model would be loaded from; otherwise its last.

Why not `Trainer.hyperparameter_search`: it reuses one Trainer for every trial and applies the trial's
settings after the Trainer was built, so what RecipeTrainer derives from the settings when it is built
(the labelled tokens per optimizer step that weigh a length-grouped NER batch, which depend on the batch
size; the CRF's optimizer group, which belongs to the first trial's model) would be stale; and it runs
N trials in each process, with no way to stop a study shared by several workers at N in all. Here each
trial gets a Trainer of its own, and the study is Optuna's, driven by its public API.

A study in a database (`--hp_search_storage`) is shared: every worker started with the same storage
and `--hp_search_study` works on it, and the study stops at N trials in all. Workers send a heartbeat;
a worker killed mid-trial (kill -9) has that trial marked failed by the next worker to start a trial
once the heartbeat is `GRACE_PERIOD` seconds old, and its settings are tried again in a new trial. The
failed attempt is listed but not counted in the N.
"""

import contextlib
import copy
import logging
import math
import os
import socket
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from transformers import TrainerCallback, set_seed

from common.config.errors import OptionError
from common.config.redaction import without_credentials
from common.config.search_space import read_space
from common.training.guards import NonFiniteTraining

logger = logging.getLogger(__name__)
# heartbeats, retries and Optuna's plots are "experimental" (since Optuna 2.8); warning on every use says nothing new
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

HEARTBEAT_INTERVAL = 5  # seconds between a running trial's heartbeats in a database study
GRACE_PERIOD = 20  # a trial whose heartbeat is older than this is taken to be dead (its worker was killed)
SCHEMA_RACE_ATTEMPTS = 5  # tries at opening a new database while other workers create its tables
SEARCH_FOLDER = "hp_search"  # in --output_dir: trials.csv, best_params.yaml, the plots
RUNS_FOLDER = Path("runs") / "hp_search"  # TensorBoard: a folder per trial, beside the final run's logs


@dataclass
class SearchResult:
    """A finished search: the study, what the objective is, and the best settings as applied to the run."""

    study: optuna.Study
    objective: str  # the evaluation metric, e.g. eval_accuracy
    best_params: dict  # training argument -> value


class ReportToTrial(TrainerCallback):
    """Each evaluation's objective reported to the Optuna trial; a trial the pruner finds behind is stopped."""

    def __init__(self, trial, objective: str, maximize: bool, best_of_all: bool, training_rows: int):
        self.trial, self.key, self.maximize, self.best_of_all = trial, objective, maximize, best_of_all
        self.training_rows = training_rows
        self.value = None  # the trial's objective so far: its best evaluation, or its last

    def record(self, metrics: dict) -> bool:
        """Take an evaluation's metrics; False if the objective is missing or not finite (not reported)."""
        value = metrics.get(self.key)
        if value is None or not math.isfinite(value):
            logger.warning(f"Trial {self.trial.number}: {self.key} is {value}; not reported to the study")
            return False
        better = self.value is None or (value > self.value if self.maximize else value < self.value)
        if better or not self.best_of_all:
            self.value = value
        return True

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        """Report at the number of training examples seen; raise optuna.TrialPruned if the pruner says so."""
        if not self.record(metrics or {}):
            return
        examples = round((state.epoch or 0) * self.training_rows)
        self.trial.report(self.value, examples)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.key} {self.value:.4g} after {examples:,} training examples")


def search_hyperparameters(new_trainer, run, search_args, settings) -> SearchResult:
    """Run the study (or its share of a shared one), then apply its best settings to `run.args` and `settings`.

    `new_trainer(args)` builds a RecipeTrainer with a fresh model for a trial's arguments (called after
    `set_seed(args.seed)`, as the run builds its own model, so that the best trial trains again the same).
    """
    training_args = run.args
    check_can_search(training_args)
    parameters = read_space(search_args.hp_search_space, set(vars(training_args)))
    metric = (training_args.metric_for_best_model or "loss").removeprefix("eval_")
    objective, maximize = f"eval_{metric}", bool(training_args.greater_is_better) and metric != "loss"
    if training_args.max_steps > 0 and any(p.argument == "num_train_epochs" for p in parameters):
        logger.warning(f"--max_steps {training_args.max_steps} sets the length of every trial: the searched "
                       "num_train_epochs has no effect (set --max_steps -1 to search the epochs)")
    study = open_study(search_args, maximize, metric, training_args.seed, parameters)
    run.make_room()  # an unfinished run's leftovers go before the trials write theirs

    def run_trial(trial):
        params = {p.argument: p.suggest(trial) for p in parameters}
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        args = trial_arguments(training_args, params)
        logger.info(f"Trial {trial.number}: " + ", ".join(f"{name} {value:.4g}" if isinstance(value, float)
                                                          else f"{name} {value}" for name, value in trial.params.items()))
        with tensorboard_folder(training_args, trial.number):  # read when the Trainer is built
            set_seed(args.seed)
            trainer = new_trainer(args)
            if trainer.eval_dataset is None:
                raise OptionError("--hp_search_trials scores each trial on the validation set, and there is none: "
                                  "give --validation_file (or a --validation_split above 0)")
            report = ReportToTrial(trial, objective, maximize, bool(training_args.load_best_model_at_end),
                                   len(trainer.train_dataset))
            trainer.add_callback(report)
            trainer.train()
            if report.value is None:  # no evaluation during training (--eval_strategy no): one at the end
                report.record(trainer.evaluate())
        return float("nan") if report.value is None else report.value  # NaN: Optuna marks the trial failed

    started = time.time()
    run_study(study, run_trial, search_args.hp_search_trials, bool(search_args.hp_search_storage))
    best = best_trial(study)
    best_params = {p.argument: cast(training_args, p.argument, best.params[p.name]) for p in parameters
                   if p.name in best.params}
    for argument, value in best_params.items():
        setattr(training_args, argument, value)
        settings.values[argument] = value
    logger.info(f"Search done in {time.time() - started:.0f} s: best trial {best.number}, {objective} {best.value:.4f} "
                f"({state_counts(study)}); training with "
                + ", ".join(f"{k} {v}" for k, v in best_params.items()))
    return SearchResult(study, objective, best_params)


def check_can_search(args) -> None:
    """What a search cannot run with: the messages name the option."""
    if args.world_size > 1:
        raise OptionError("--hp_search_trials runs in one process per worker: start several workers (python run.py "
                          "... with the same --hp_search_storage) instead of torchrun or accelerate launch")


def open_study(search_args, maximize: bool, metric: str, seed: int, parameters=()) -> optuna.Study:
    """The study: in memory, or loaded from (or created in) --hp_search_storage; a study of another metric or
    another space is an OptionError (its trials would be mixed with this run's, and its best trial would lack
    settings of this space)."""
    url = search_args.hp_search_storage
    storage = open_storage(url) if url else None
    # Workers of a shared study must not draw the same settings: its sampler is seeded only when it is ours alone.
    sampler = optuna.samplers.TPESampler(seed=None if storage else seed)
    pruner = {"median": optuna.pruners.MedianPruner(n_startup_trials=4),
              "hyperband": optuna.pruners.HyperbandPruner(),
              "none": optuna.pruners.NopPruner()}[search_args.hp_search_pruner]
    direction = "maximize" if maximize else "minimize"
    study = optuna.create_study(storage=storage, study_name=search_args.hp_search_study, sampler=sampler,
                                pruner=pruner, direction=direction, load_if_exists=True)
    where = f"--hp_search_study {study.study_name} in {without_credentials(str(url))}"
    recorded = study.user_attrs.get("metric")
    if recorded is None:
        study.set_user_attr("metric", metric)
    elif recorded != metric or study.direction.name.lower() != direction:
        raise OptionError(f"{where} optimizes {recorded} ({study.direction.name.lower()}), not {metric} "
                          f"({direction}): give another --hp_search_study, or the same --metric_for_best_model")
    space = {p.name: {k: v for k, v in asdict(p).items() if k != "name" and v is not None and v is not False}
             for p in parameters}
    recorded_space = study.user_attrs.get("space")
    if recorded_space is None:
        searched = {name for t in study.get_trials(deepcopy=False) for name in t.params}
        recorded_space = space if searched <= set(space) else {name: "?" for name in searched}
        study.set_user_attr("space", recorded_space)
    if recorded_space != space:
        raise OptionError(f"{where} searches another space ({describe_space(recorded_space)}) than this run's "
                          f"({describe_space(space)}): its trials would be mixed with this run's; give another "
                          "--hp_search_study, or the study's --hp_search_space")
    return study


def describe_space(space: dict) -> str:
    """"learning_rate 1e-05..0.0005 log, per_device_train_batch_size [16, 32]": a space in a line."""
    def one(name, spec):
        if not isinstance(spec, dict):
            return name
        if "choices" in spec:
            return f"{name} {spec['choices']}"
        return f"{name} {spec.get('low'):g}..{spec.get('high'):g}" + (" log" if spec.get("log") else "")
    return ", ".join(one(name, spec) for name, spec in space.items())


def open_storage(url: str):
    """An Optuna database storage with heartbeats (so that a killed worker's trial is failed and retried)."""
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}  # wait for a busy file
    for attempt in range(SCHEMA_RACE_ATTEMPTS):
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=GRACE_PERIOD,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
        except Exception as error:  # SQLAlchemy's errors for a bad URL, a missing driver, a folder that does not exist
            # Workers started together on a new database race to create its tables; the loser finds them made.
            raced = isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in str(error)
            if raced and attempt + 1 < SCHEMA_RACE_ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
                continue
            first_line = (str(error).splitlines() or [type(error).__name__])[0][:200]
            raise OptionError(without_credentials(f"--hp_search_storage {url}: cannot open it "
                                                  f"({type(error).__name__}: {first_line})")) from None


def run_study(study: optuna.Study, run_trial, total: int, shared: bool) -> None:
    """Run trials until the study holds `total`; in a shared study, then wait for the other workers' running trials.

    Waiting lets a trial whose worker was killed be found dead (its heartbeat stops) and tried again, and
    makes the results written afterwards cover the whole study.
    """
    announced = False
    while True:
        if shared:
            optuna.storages.fail_stale_trials(study)  # a killed worker's trial: failed, its settings queued again
        remaining = total - counted_trials(study)
        if remaining > 0:
            logger.info(f"Search: {remaining} trial(s) to run in study '{study.study_name}' ({total} in all)")
            study.optimize(run_trial, n_trials=remaining, callbacks=[StopAtTotal(total)],
                           catch=(NonFiniteTraining,), gc_after_trial=True)
            continue
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not shared or not running:
            return
        if not announced:
            logger.info(f"Search: waiting for {len(running)} trial(s) of other workers ({', '.join(str(t.number) for t in running)})")
            announced = True
        time.sleep(HEARTBEAT_INTERVAL)


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards N: finished or running ones, except a failed attempt whose settings are tried again
    (the queued retry is counted once it runs)."""
    trials = study.get_trials(deepcopy=False)
    retried = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials}
    return sum(1 for t in trials if t.number not in retried and t.state != TrialState.WAITING)


class StopAtTotal:
    """Optuna callback: stop this worker once the study holds `total` counted trials (every worker's)."""

    def __init__(self, total: int):
        self.total = total

    def __call__(self, study, trial):
        if counted_trials(study) >= self.total:
            study.stop()


def trial_arguments(training_args, params: dict):
    """A copy of the run's arguments with the trial's settings; no checkpoints (the final run saves the best)."""
    args = copy.deepcopy(training_args)
    for argument, value in params.items():
        setattr(args, argument, cast(training_args, argument, value))
    args.save_strategy = "no"
    args.load_best_model_at_end = False  # the objective is the best evaluation, taken by ReportToTrial
    return args


def cast(training_args, argument: str, value):
    """A suggested value in the type of the argument it sets (an int flag gets an int; warmup_steps stays a float)."""
    current = getattr(training_args, argument, None)
    if isinstance(current, bool) or current is None or isinstance(value, str):
        return value
    if isinstance(current, int) and float(value).is_integer() and argument != "warmup_steps":
        return int(value)
    return value


@contextlib.contextmanager
def tensorboard_folder(args, number: int):
    """With --report_to tensorboard, a trial's events go to runs/hp_search/trial-N (read when a Trainer is built)."""
    if "tensorboard" not in (args.report_to or []):
        yield
        return
    before = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(args.output_dir) / RUNS_FOLDER / f"trial-{number:03d}")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = before


def state_counts(study: optuna.Study) -> str:
    """"11 complete, 5 pruned": the study's trials by state."""
    counts = {state.name.lower(): sum(t.state == state for t in study.trials) for state in TrialState}
    return ", ".join(f"{n} {name}" for name, n in counts.items() if n)


def best_trial(study: optuna.Study):
    """The study's best completed trial; none completed is an OptionError that says what happened."""
    try:
        return study.best_trial
    except ValueError:
        raise OptionError(f"the search found no completed trial ({state_counts(study)}): "
                          "failed trials are listed with their error in the log; widen --hp_search_space or lower "
                          "the learning rate") from None
