"""Hyperparameter search (--hp_search_trials): the space file, pruning, a study shared by processes, the outputs."""

import json
import logging
import multiprocessing
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
import yaml
from transformers import TrainingArguments

from common.config.errors import OptionError
from common.config.parsing import Settings
from common.config.process import run_main, setup_logging
from common.config.search_space import DEFAULT_SPACE, read_space
from common.outputs.run_report import write_run_config
from common.training.hp_search import ReportToTrial, counted_trials, open_storage, open_study

TRAINING_FIELDS = set(TrainingArguments.__dataclass_fields__)


def space_file(tmp_path, space: dict, name="space.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(space))
    return path


# ------------------------------------------------------------------------------------- the space file


def test_the_space_files_types_and_ranges_are_honoured(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("learning_rate: {type: float, low: 1e-5, high: 1e-2, log: true}\n"  # 1e-5 without a dot: a string
                    "num_train_epochs: {type: int, low: 1, high: 3}\n"
                    "per_device_train_batch_size: {type: categorical, choices: [8, 16]}\n"
                    "warmup_ratio: {type: float, low: 0.0, high: 0.2, step: 0.05}\n")
    parameters = read_space(str(path), TRAINING_FIELDS)
    assert [(p.name, p.argument, p.kind) for p in parameters] == [
        ("learning_rate", "learning_rate", "float"), ("num_train_epochs", "num_train_epochs", "int"),
        ("per_device_train_batch_size", "per_device_train_batch_size", "categorical"),
        ("warmup_ratio", "warmup_steps", "float")]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = []
    for _ in range(200):
        trial = study.ask()
        drawn.append({p.name: p.suggest(trial) for p in parameters})
        study.tell(trial, 0.0)
    rates = [d["learning_rate"] for d in drawn]
    assert all(1e-5 <= r <= 1e-2 for r in rates)
    assert sum(r < 1e-3 for r in rates) > 100  # a log scale: two of the three decades lie below 1e-3
    assert {d["num_train_epochs"] for d in drawn} == {1, 2, 3}
    assert all(isinstance(d["num_train_epochs"], int) for d in drawn)
    assert {d["per_device_train_batch_size"] for d in drawn} == {8, 16}
    assert {round(d["warmup_ratio"], 6) for d in drawn} == {0.0, 0.05, 0.1, 0.15, 0.2}


@pytest.mark.parametrize("space, message", [
    ({"learning_rat": {"type": "float", "low": 1e-5, "high": 1e-3}}, r"learning_rat: unknown parameter"),
    ({"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-5}}, r"low 0.001 is above high 1e-05"),
    ({"learning_rate": {"type": "float", "low": 0, "high": 1e-3, "log": True}}, r"log-scale range must start above 0"),
    ({"num_train_epochs": {"type": "int", "low": 1.5, "high": 3}}, r"not a whole number"),
    ({"learning_rate": {"type": "uniform", "low": 0, "high": 1}}, r"type float, int or categorical"),
    ({"learning_rate": {"type": "float", "low": 0, "hi": 1}}, r"hi is not a key of a float range"),
    ({"per_device_train_batch_size": {"type": "categorical", "choices": []}}, r"non-empty list of choices"),
])
def test_a_bad_space_file_is_one_clear_line(tmp_path, space, message):
    path = space_file(tmp_path, space)
    with pytest.raises(ValueError, match=message) as caught:
        read_space(str(path), TRAINING_FIELDS)
    assert str(path) in str(caught.value)


def test_a_bad_space_stops_the_run_with_status_2_before_any_data_is_read(tmp_path, repo):
    path = space_file(tmp_path, {"dropout": {"type": "float", "low": 0, "high": 0.3}})
    run = subprocess.run([sys.executable, str(repo / "recipes/sentiment/run.py"), "--train_file", "missing.csv",
                          "--hp_search_trials", "4", "--hp_search_space", str(path), "--output_dir",
                          str(tmp_path / "out")], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith(f"error: {path}: dropout: unknown parameter")
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("flags, message", [
    (["--hp_search_trials", "2", "--cv_folds", "3"], r"--hp_search_trials and --cv_folds do not combine"),
    (["--hp_search_trials", "2", "--do_train", "False"], r"it needs --do_train"),
    (["--hp_search_storage", "sqlite:///x.db"], r"--hp_search_storage set without a search"),
    (["--hp_search_trials", "0"], r"--hp_search_trials 0 must be at least 1"),
])
def test_searches_refuse_what_they_cannot_run_with(tmp_path, recipe, flags, message):
    with pytest.raises(OptionError, match=message):
        recipe("sentiment").main(["--train_file", "t.csv", "--validation_file", "v.csv", "--output_dir",
                                  str(tmp_path / "o"), *flags])


# ------------------------------------------------------------------------------------------ pruning


class State:
    def __init__(self, epoch):
        self.epoch = epoch


def test_pruning_stops_a_trial_that_falls_behind():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    for _ in range(2):  # two finished trials at 0.9 after each of four evaluations
        trial = study.ask()
        report = ReportToTrial(trial, "eval_accuracy", True, True, training_rows=100)
        for epoch in (0.25, 0.5, 0.75, 1.0):
            report.on_evaluate(None, State(epoch), None, metrics={"eval_accuracy": 0.9})
        study.tell(trial, report.value)
    trial = study.ask()
    report = ReportToTrial(trial, "eval_accuracy", True, True, training_rows=100)
    with pytest.raises(optuna.TrialPruned, match=r"eval_accuracy 0.5 after 25 training examples"):
        report.on_evaluate(None, State(0.25), None, metrics={"eval_accuracy": 0.5})
    assert trial.storage.get_trial(trial._trial_id).intermediate_values == {25: 0.5}  # at the examples seen


def test_the_objective_is_the_best_evaluation_with_load_best_model_at_end_else_the_last():
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.NopPruner())
    best = ReportToTrial(study.ask(), "eval_loss", False, True, training_rows=10)
    last = ReportToTrial(study.ask(), "eval_loss", False, False, training_rows=10)
    for epoch, loss in ((1, 0.5), (2, 0.3), (3, 0.4), (4, float("nan"))):
        for report in (best, last):
            report.on_evaluate(None, State(epoch), None, metrics={"eval_loss": loss})
    assert (best.value, last.value) == (0.3, 0.4)  # a NaN evaluation is not reported


# ---------------------------------------------------------------------------------- runs of a recipe


def search_flags(tiny_bert, train, out, trials, *more):
    return ["--model", str(tiny_bert), "--train_file", str(train), "--validation_split", "0.25",
            "--num_train_epochs", "8", "--per_device_train_batch_size", "16", "--warmup_steps", "0",
            "--eval_strategy", "epoch", "--save_strategy", "epoch", "--load_best_model_at_end", "True",
            "--metric_for_best_model", "accuracy", "--output_dir", str(out), "--bf16", "False",
            "--disable_tqdm", "True", "--hp_search_trials", str(trials), "--seed", "7", *more]


@pytest.mark.slow
def test_a_search_finds_the_better_learning_rate_and_its_best_params_round_trip(tmp_path, tiny_bert, write_csv,
                                                                                   sentiment_rows, recipe):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(160))
    space = space_file(tmp_path, {"learning_rate": {"type": "categorical", "choices": [1e-7, 3e-3]}})
    out = tmp_path / "search"
    recipe("sentiment").main(search_flags(tiny_bert, train, out, 4, "--hp_search_space", str(space),
                                          "--hp_search_pruner", "none", "--report_to", "tensorboard"))
    trials = pd.read_csv(out / "hp_search" / "trials.csv")
    # TensorBoard: each trial's events in runs/hp_search/trial-N, the final run's in runs/<time>_<host>
    events = sorted(p.relative_to(out / "runs").parts[:-1] for p in (out / "runs").rglob("events.out.tfevents.*"))
    assert events[-4:] == [("hp_search", f"trial-00{i}") for i in range(4)] and len(events) == 5
    assert list(trials["number"]) == [0, 1, 2, 3] and set(trials["state"]) == {"COMPLETE"}
    assert set(trials["learning_rate"]) == {1e-7, 3e-3}  # both were tried (the sampler is seeded)
    by_rate = trials.groupby("learning_rate")["eval_accuracy"].max()
    assert by_rate[3e-3] > 0.9 > by_rate[1e-7] + 0.2  # 1e-7 learns nothing in 8 epochs
    best = yaml.safe_load((out / "hp_search" / "best_params.yaml").read_text())
    assert best["learning_rate"] == 3e-3 and "hp_search_trials" not in best
    assert (out / "hp_search" / "optimization_history.png").stat().st_size > 5000
    # the run then trained the best settings into --output_dir: the best trial's accuracy again, same seed
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_accuracy"] == pytest.approx(by_rate[3e-3], abs=1e-9)
    assert (out / "model.safetensors").is_file()
    # and best_params.yaml, given back with --config, trains it again to the same accuracy
    again = tmp_path / "again"
    recipe("sentiment").main(["--config", str(out / "hp_search" / "best_params.yaml"), "--output_dir", str(again)])
    assert json.loads((again / "all_results.json").read_text())["eval_accuracy"] == pytest.approx(
        by_rate[3e-3], abs=1e-9)


@pytest.mark.slow
def test_a_nan_trial_fails_and_the_study_goes_on(tmp_path, tiny_bert, write_csv, sentiment_rows, recipe):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(96))
    space = space_file(tmp_path, {"learning_rate": {"type": "categorical", "choices": [1e12, 3e-3]}})
    out = tmp_path / "out"
    recipe("sentiment").main(search_flags(tiny_bert, train, out, 4, "--hp_search_space", str(space),
                                          "--hp_search_pruner", "none", "--hp_search_train_best", "False"))
    trials = pd.read_csv(out / "hp_search" / "trials.csv")
    states = dict(zip(trials["learning_rate"], trials["state"]))
    assert states == {1e12: "FAIL", 3e-3: "COMPLETE"}
    assert len(trials) == 4 and not (out / "model.safetensors").exists()  # the search's results alone


def test_a_storage_that_cannot_be_opened_is_one_line(tmp_path, tiny_bert, write_csv, sentiment_rows, recipe):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40))
    url = f"sqlite:///{tmp_path}/no/such/folder/study.db"
    with pytest.raises(OptionError, match=r"--hp_search_storage sqlite:///.*study.db: cannot open it"):
        recipe("sentiment").main(search_flags(tiny_bert, train, tmp_path / "o", 2, "--hp_search_storage", url))


def test_a_password_in_the_storage_url_is_never_printed(tmp_path, tiny_bert, write_csv, sentiment_rows, recipe,
                                                        capsys):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40))
    url = "postgresql://user:s3cret-Pa55@127.0.0.1:1/db"  # no server there, and perhaps no driver: cannot be opened
    flags = search_flags(tiny_bert, train, tmp_path / "o", 2, "--hp_search_storage", url)
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: recipe("sentiment").main(flags))
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "s3cret-Pa55" not in error
    assert "--hp_search_storage postgresql://user:***@127.0.0.1:1/db: cannot open it" in error.splitlines()[-1]


def test_credentials_are_masked_in_the_log_and_in_run_config(tmp_path, capsys):
    setup_logging(SimpleNamespace(should_log=True, get_process_log_level=lambda: logging.WARNING))
    logging.getLogger("common.test").info("study in postgresql://user:s3cret@db.example/optuna, %s", "ok")
    assert "postgresql://user:***@db.example/optuna, ok" in capsys.readouterr().err
    settings = Settings({"hp_search_storage": "mysql+pymysql://me:s3cret@host/db", "learning_rate": 1e-3}, None)
    written = write_run_config(tmp_path / "run_config.yaml", settings).read_text()
    assert "s3cret" not in written and "mysql+pymysql://me:***@host/db" in written
    assert settings.values["hp_search_storage"] == "mysql+pymysql://me:s3cret@host/db"  # the run itself keeps it


def test_a_study_holds_one_space_and_a_run_with_another_is_refused(tmp_path, tiny_bert, write_csv, sentiment_rows,
                                                                   recipe, capsys):
    url = f"sqlite:///{tmp_path}/study.db"
    rates = space_file(tmp_path, {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True}})
    decay = space_file(tmp_path, {"weight_decay": {"type": "float", "low": 0.0, "high": 0.1}}, "decay.yaml")
    search = SimpleNamespace(hp_search_storage=url, hp_search_study="mixed", hp_search_pruner="none")
    study = open_study(search, True, "accuracy", 0, read_space(str(rates), TRAINING_FIELDS))
    trial = study.ask()
    read_space(str(rates), TRAINING_FIELDS)[0].suggest(trial)
    study.tell(trial, 0.5)
    assert open_study(search, True, "accuracy", 0, read_space(str(rates), TRAINING_FIELDS)).trials  # same space: on
    with pytest.raises(OptionError, match=r"--hp_search_study mixed in sqlite:///.*study.db searches another space "
                                          r"\(learning_rate 1e-05..0.001 log\) than this run's \(weight_decay 0..0.1\)"):
        open_study(search, True, "accuracy", 0, read_space(str(decay), TRAINING_FIELDS))
    # a study made before the space was recorded: its trials' parameters say what it searched
    old = optuna.create_study(storage=url, study_name="older", direction="maximize")
    trial = old.ask()
    trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)
    old.tell(trial, 0.5)
    search.hp_search_study = "older"
    with pytest.raises(OptionError, match=r"searches another space \(learning_rate\) than this run's"):
        open_study(search, True, "accuracy", 0, read_space(str(decay), TRAINING_FIELDS))

    # the run: one line, exit status 2, and nothing written into its output folder
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40))
    flags = search_flags(tiny_bert, train, tmp_path / "o", 2, "--hp_search_storage", url, "--hp_search_study", "mixed",
                         "--hp_search_space", str(decay))
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: recipe("sentiment").main(flags))
    assert exit_info.value.code == 2 and "searches another space" in capsys.readouterr().err.splitlines()[-1]
    assert not (tmp_path / "o").exists()


def _open_when_all_are_ready(url, barrier, results):
    barrier.wait()
    try:
        open_storage(url)
        results.put("ok")
    except OptionError as error:
        results.put(str(error))


def test_workers_opening_a_new_database_together_all_open_it(tmp_path):
    # Workers started at once race to create the tables; without retrying, one in three failed here.
    fork = multiprocessing.get_context("fork")
    outcomes = []
    for round_ in range(6):
        url = f"sqlite:///{tmp_path}/race{round_}.db"
        barrier, results = fork.Barrier(3), fork.Queue()
        workers = [fork.Process(target=_open_when_all_are_ready, args=(url, barrier, results)) for _ in range(3)]
        for worker in workers:
            worker.start()
        outcomes += [results.get(timeout=120) for _ in workers]
        for worker in workers:
            worker.join()
    assert outcomes == ["ok"] * 18


@pytest.mark.slow
def test_two_processes_share_one_sqlite_study(tmp_path, tiny_bert, write_csv, sentiment_rows, repo):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(160))
    url = f"sqlite:///{tmp_path}/study.db"
    env = {**os.environ, "PYTHONPATH": str(repo)}
    workers = [subprocess.Popen([sys.executable, str(repo / "recipes/sentiment/run.py"),
                                 *search_flags(tiny_bert, train, tmp_path / f"worker{i}", 6, "--hp_search_storage", url,
                                               "--hp_search_study", "shared", "--hp_search_train_best", "False")],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker.stderr.read()[-2000:]
    study = optuna.load_study(study_name="shared", storage=url)
    assert counted_trials(study) == 6 and len(study.trials) == 6  # six in all, none twice
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both worked on it
    for i in range(2):  # each worker's trials.csv is the whole study, and names the same best
        trials = pd.read_csv(tmp_path / f"worker{i}" / "hp_search" / "trials.csv")
        assert list(trials["number"]) == list(range(6))
        best = yaml.safe_load((tmp_path / f"worker{i}" / "hp_search" / "best_params.yaml").read_text())
        assert trials["eval_accuracy"].max() == pytest.approx(study.best_value)
        assert best["learning_rate"] == pytest.approx(study.best_params["learning_rate"])


@pytest.mark.slow
def test_a_worker_killed_in_a_trial_loses_only_that_trial(tmp_path, tiny_bert, write_csv, sentiment_rows, repo):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(320))
    url = f"sqlite:///{tmp_path}/study.db"
    command = [sys.executable, str(repo / "recipes/sentiment/run.py"),
               *search_flags(tiny_bert, train, tmp_path / "out", 4, "--hp_search_storage", url,
                             "--hp_search_train_best", "False")]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    states, third_params = [], {}
    while worker.poll() is None:  # kill it in its third trial, once that trial has sampled all its settings
        try:
            trials = optuna.load_study(study_name="hp_search", storage=url).trials
            states, third_params = [t.state.name for t in trials], (trials[-1].params if trials else {})
        except KeyError:  # not created yet
            pass
        if states == ["COMPLETE", "COMPLETE", "RUNNING"] and len(third_params) == len(DEFAULT_SPACE):
            worker.kill()
            break
        time.sleep(0.2)
    assert worker.wait() == -9, f"the worker ended before it could be killed in its third trial: {states}"
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)  # started again at once
    assert again.returncode == 0, again.stderr[-2000:]
    study = optuna.load_study(study_name="hp_search", storage=url)
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert counted_trials(study) == 4  # the killed attempt is listed, not counted
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == 2)
    assert retry.params == trials[2].params and retry.state.name == "COMPLETE"  # its settings were tried again
    listed = pd.read_csv(tmp_path / "out" / "hp_search" / "trials.csv")
    assert list(listed["state"]) == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]


SMALL_SPACE = {"learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
               "per_device_train_batch_size": {"type": "categorical", "choices": [8, 16]}}


def every_recipe(name, tmp_path, tiny_bert, shared_data, write_csv, sentiment_rows, synthetic_conll, repo):
    """Flags for a small run of each recipe's task; the metric its search optimizes."""
    if name in ("sentiment", "text_classification"):
        train = write_csv(tmp_path / "train.csv", sentiment_rows(80))
        return ["--model", str(tiny_bert), "--train_file", str(train), "--validation_split", "0.25"], "accuracy"
    if name == "ner":
        train = synthetic_conll(tmp_path / "train.txt", 60, seed=0)
        valid = synthetic_conll(tmp_path / "valid.txt", 20, seed=1)
        return ["--model", str(tiny_bert), "--train_file", str(train), "--validation_file", str(valid)], "f1"
    config = repo / "recipes" / "chinese_ernie" / "configs" / f"{name.split('-')[1]}_scratch.yaml"
    small = ["--max_train_samples", "120", "--max_eval_samples", "40", "--do_predict", "False", "--max_seq_length", "64"]
    crf = ["--crf", "True"] if "cluener" in name else []
    return ["--config", str(config), "--data_dir", str(shared_data), *small, *crf], \
        "accuracy" if "chnsenticorp" in name else "f1"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["text_classification", "ner", "chinese_ernie-chnsenticorp", "chinese_ernie-cluener"])
def test_every_recipe_searches(tmp_path, name, tiny_bert, shared_data, write_csv, sentiment_rows, synthetic_conll,
                               repo, recipe):
    if name.startswith("chinese") and not (shared_data / name.split("-")[1].replace("cluener", "cluener2020")).is_dir():
        pytest.skip("benchmark data not here")
    flags, metric = every_recipe(name, tmp_path, tiny_bert, shared_data, write_csv, sentiment_rows, synthetic_conll,
                                 repo)
    out = tmp_path / "out"
    recipe(name.split("-")[0]).main([*flags, "--num_train_epochs", "2", "--eval_strategy", "epoch",
                                     "--save_strategy", "epoch", "--output_dir", str(out), "--bf16", "False",
                                     "--disable_tqdm", "True", "--hp_search_trials", "2", "--hp_search_pruner", "none",
                                     "--hp_search_space", str(space_file(tmp_path, SMALL_SPACE))])
    trials = pd.read_csv(out / "hp_search" / "trials.csv")
    assert list(trials["state"]) == ["COMPLETE", "COMPLETE"] and trials[f"eval_{metric}"].notna().all()
    results = json.loads((out / "all_results.json").read_text())  # the best settings, trained as a run
    assert results[f"eval_{metric}"] == pytest.approx(trials[f"eval_{metric}"].max(), abs=1e-9)
    best = trials.loc[trials[f"eval_{metric}"].idxmax()]
    run_config = yaml.safe_load((out / "run_config.yaml").read_text())
    assert run_config["learning_rate"] == pytest.approx(best["learning_rate"])
    assert run_config["per_device_train_batch_size"] == best["per_device_train_batch_size"]


def test_a_search_without_validation_data_is_one_line(tmp_path, tiny_bert, write_csv, sentiment_rows, recipe):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40))
    flags = search_flags(tiny_bert, train, tmp_path / "o", 2) + ["--validation_split", "0", "--eval_strategy", "no",
                                                                  "--save_strategy", "no", "--load_best_model_at_end",
                                                                  "False"]
    with pytest.raises(OptionError, match=r"scores each trial on the validation set, and there is none"):
        recipe("sentiment").main(flags)
