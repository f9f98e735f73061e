"""What a hyperparameter search buys on SST-2, and a study shared by two workers, one of them killed mid-trial.

    python bench/hp_search.py --model <MiniLM folder> [--data_dir ../shared/data] [--train_rows 4000] [--trials 16]
                              [--shared_trials 6] [--shared_train_rows 1000] [--work DIR]

1. The sentiment recipe as configured (configs/sst2.yaml) on the first --train_rows training sentences,
   then the same with `--hp_search_trials --trials` (the default space, median pruning, evaluation each
   epoch): dev accuracy of each final model, the search's best trial, trials complete/pruned/failed,
   wall time.
2. Two workers (one CPU thread each) on one SQLite study of --shared_trials trials over the first
   --shared_train_rows sentences; the first is killed (SIGKILL) in its second trial and started again at
   once. Checks: the study holds N counted trials, no trial number twice, the killed trial failed and
   its settings ran again, and each worker's trials.csv names the study's best.
Each run is its own process; the outputs stay under --work.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`

from bench.harness import DATA_DIR, REPO, print_table, run_recipe  # noqa: E402

QUIET = ["--explain_examples", "0", "--report_to", "none"]


def compare_search(model: str, data_dir: str, train_rows: int, trials: int, work: Path) -> None:
    """The recipe's defaults against a search on the same sentences, each a whole recipe run."""
    import pandas as pd

    flags = ["--model", model]
    rows = []
    default, seconds, _ = run_recipe(work / "default", flags, data_dir, "--max_train_samples", str(train_rows), *QUIET,
                                     as_configured=True)
    rows.append(("recipe defaults (configs/sst2.yaml)", f"{default['eval_accuracy']:.4f}", "", "1 run", f"{seconds:.0f}"))
    searched, seconds, _ = run_recipe(work / "search", flags, data_dir, "--max_train_samples", str(train_rows),
                                      "--hp_search_trials", str(trials), *QUIET, as_configured=True)
    table = pd.read_csv(work / "search" / "hp_search" / "trials.csv")
    states = table["state"].value_counts()
    best = table.loc[table["eval_accuracy"].idxmax()]
    settings = ", ".join(f"{k} {best[k]:.3g}" if isinstance(best[k], float) else f"{k} {best[k]}"
                         for k in ("learning_rate", "per_device_train_batch_size", "num_train_epochs", "warmup_ratio",
                                   "weight_decay") if k in best)
    rows.append((f"search, {trials} trials, then the best trained", f"{searched['eval_accuracy']:.4f}",
                 f"{best['eval_accuracy']:.4f} (trial {int(best['number'])}: {settings})",
                 f"{states.get('COMPLETE', 0)} complete, {states.get('PRUNED', 0)} pruned, {states.get('FAIL', 0)} failed",
                 f"{seconds:.0f}"))
    print(f"SST-2, first {train_rows:,} training sentences, dev accuracy (872 sentences)")
    print_table(["run", "dev accuracy", "best trial", "trials", "wall s"], rows)


def shared_study(model: str, data_dir: str, train_rows: int, trials: int, work: Path) -> None:
    """Two workers on one SQLite study; the first killed in its second trial and started again."""
    import optuna
    import pandas as pd

    from common.training.hp_search import counted_trials

    work.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{work / 'study.db'}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

    def start(name):
        command = [sys.executable, str(REPO / "recipes/sentiment/run.py"), "--config",
                   str(REPO / "recipes/sentiment/configs/sst2.yaml"), "--model", model, "--data_dir", data_dir,
                   "--max_train_samples", str(train_rows), "--hp_search_trials", str(trials), "--hp_search_storage",
                   url, "--hp_search_study", "shared", "--hp_search_train_best", "False", "--output_dir",
                   str(work / name), "--overwrite_output_dir", "True", "--disable_tqdm", "True", *QUIET]
        log = open(work / f"{name}.log", "a")
        return subprocess.Popen(command, env=env, stdout=log, stderr=log)

    started = time.perf_counter()
    first, second = start("worker1"), start("worker2")
    killed_in = None
    while killed_in is None and first.poll() is None:
        time.sleep(0.2)
        try:
            study = optuna.load_study(study_name="shared", storage=url)
        except KeyError:
            continue
        mine = [t for t in study.trials if t.user_attrs.get("worker", "").endswith(f":{first.pid}")]
        if len(mine) >= 2 and mine[-1].state.name == "RUNNING":
            first.kill()
            killed_in = mine[-1].number
    if killed_in is None:
        sys.exit("worker 1 ended before its second trial: give more --shared_trials")
    first.wait()
    restarted = start("worker1")
    for worker in (restarted, second):
        if worker.wait() != 0:
            sys.exit(f"a worker failed: see {work}/worker1.log and worker2.log")
    seconds = time.perf_counter() - started
    study = optuna.load_study(study_name="shared", storage=url)
    numbers = [t.number for t in study.trials]
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed_in]
    listed = [pd.read_csv(work / name / "hp_search" / "trials.csv") for name in ("worker1", "worker2")]
    rows = [("trials counted / asked", f"{counted_trials(study)} / {trials}"),
            ("trials listed (with the killed attempt)", len(numbers)),
            ("trial numbers used twice", len(numbers) - len(set(numbers))),
            ("killed trial", f"{killed_in}: {study.trials[killed_in].state.name}"),
            ("its settings run again", f"trial {retry[0].number}: {retry[0].state.name}" if retry else "no"),
            ("workers seen", len({t.user_attrs.get('worker') for t in study.trials if t.user_attrs.get('worker')})),
            ("study best / trials.csv best (both workers)",
             f"{study.best_value:.4f} / " + " and ".join(f"{t['eval_accuracy'].max():.4f}" for t in listed)),
            ("wall s", f"{seconds:.0f}")]
    print(f"\nTwo workers, one SQLite study of {trials} trials (first {train_rows:,} sentences); worker 1 killed "
          "in its second trial and started again")
    print_table(["check", "value"], rows)


def main():
    """Parse the flags; the comparison, then the shared study."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--train_rows", type=int, default=4000)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--shared_trials", type=int, default=6)
    parser.add_argument("--shared_train_rows", type=int, default=1000)
    parser.add_argument("--work", default=None, help="Folder for the runs' outputs (default: a new temporary one).")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-hp-search-"))
    work.mkdir(parents=True, exist_ok=True)
    compare_search(args.model, args.data_dir, args.train_rows, args.trials, work)
    shared_study(args.model, args.data_dir, args.shared_train_rows, args.shared_trials, work / "shared")


if __name__ == "__main__":
    main()
