"""Property: whatever sequence of runs, kills (at random points, during saves too), resumes, failed runs and
predictions goes into one output folder, the folder holds the earlier complete run or the new complete run, never a
mix of the two, and never nothing once a run has finished.

Each step is a real process of the sentiment recipe (tiny model) killed with SIGKILL where the example says. A run's
top-level files identify it: `all_results.json` and `run_config.yaml` carry its seed (each run gets its own), and
the weights of every finished run are recorded, so an earlier run's model beside a later run's results is caught.
A kill during the final moves leaves a journal; the next run into the folder completes it, and the check then
expects the killed run, complete.

RUN_PROPERTY_EXAMPLES sets the number of sequences (CI: 2).
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from common.training.output_dir import JOURNAL, LOCK_FILE, STAGING, finish_interrupted_commit

EXAMPLES = int(os.environ.get("RUN_PROPERTY_EXAMPLES", "2"))
FLAGS = ["--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--learning_rate", "1e-3",
         "--disable_tqdm", "True", "--bf16", "False", "--save_strategy", "steps", "--save_steps", "3",
         "--save_total_limit", "2", "--eval_strategy", "no", "--load_best_model_at_end", "False",
         "--logging_steps", "2", "--report_to", "none"]
TRIGGERS = ["time", "checkpoint", "staging", "journal"]  # what the kill waits for before its random delay

step = st.one_of(
    st.tuples(st.just("train"), st.just(None), st.just(0.0)),
    st.tuples(st.sampled_from(["kill", "kill_resume"]), st.sampled_from(TRIGGERS), st.floats(0, 1)),
    st.tuples(st.sampled_from(["resume", "bad", "predict"]), st.just(None), st.just(0.0)),
)


def top_level(out: Path) -> dict[str, str]:
    """The folder's own files (not checkpoints, the lock or subfolders) with their contents' hashes."""
    if not out.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()
            if p.is_file() and p.name != LOCK_FILE}


def run_seed(out: Path, weights_of: dict[str, int]) -> int:
    """The seed of the complete run the folder holds; fails on a mix or on something incomplete."""
    files = top_level(out)
    missing = {"config.json", "model.safetensors", "all_results.json", "run_config.yaml", "README.md",
               "trainer_state.json"} - set(files)
    assert not missing, f"not a complete run: {sorted(missing)} missing ({sorted(files)})"
    seed = json.loads((out / "all_results.json").read_text())["seed"]
    assert yaml.safe_load((out / "run_config.yaml").read_text())["seed"] == seed, "results and config of two runs"
    owners = weights_of.get(files["model.safetensors"], {seed})
    assert seed in owners, f"the model of the run with seed {sorted(owners)} beside the results of seed {seed}"
    return seed


class Folder:
    """One output folder and what the steps so far must have left in it."""

    def __init__(self, repo: Path, model: Path, train: Path, test: Path, out: Path, duration: float, kill_when=None):
        self.repo, self.model, self.train, self.test, self.out, self.duration = repo, model, train, test, out, duration
        self.kill_when = kill_when  # the conftest fixture
        self.seed = 100
        self.expected = None  # the seed of the complete run the folder holds
        self.weights_of = {}  # hash of each finished run's model.safetensors -> its seeds (a resume that trains
        # no further steps keeps the weights of the run it resumed)
        self.log = []

    def command(self, kind: str) -> list[str]:
        self.seed += 1
        flags = ["--model", str(self.model), "--train_file", str(self.train), "--output_dir", str(self.out), *FLAGS,
                 "--seed", str(self.seed)]
        if kind in ("train", "kill"):
            flags += ["--overwrite_output_dir", "True"]
        elif kind in ("resume", "kill_resume"):
            flags += ["--resume_from_checkpoint", "True"]
        elif kind == "bad":
            flags += ["--overwrite_output_dir", "True", "--train_file", str(self.out.parent / "missing.csv")]
        elif kind == "predict":
            flags = ["--model", str(self.out), "--test_file", str(self.test), "--do_train", "False", "--output_dir",
                     str(self.out), "--bf16", "False", "--disable_tqdm", "True", "--seed", str(self.seed)]
        return [sys.executable, str(self.repo / "recipes" / "sentiment" / "run.py"), *flags]

    def apply(self, kind: str, trigger, fraction: float) -> None:
        before = top_level(self.out)
        process = subprocess.Popen(self.command(kind), cwd=self.repo, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        killed = self.kill_when(process, self.out, trigger, fraction, self.duration) if trigger else False
        _, err = process.communicate(timeout=600)
        status = "killed" if killed else process.returncode
        self.log.append(f"{kind} seed {self.seed} ({trigger} {fraction:.2f}): {status}")
        assert "Traceback" not in err, "\n".join(self.log) + "\n" + err[-3000:]
        if killed:
            if (self.out / STAGING / JOURNAL).is_file():  # killed during the moves: the next run completes them
                self.log.append("  journal left: completing it, as the next run into the folder does")
                finish_interrupted_commit(self.out)
            if top_level(self.out) != before:  # its outputs are in: it is the complete run now
                self.finished_run(kind)
            return
        if process.returncode == 0 and kind != "predict":
            self.finished_run(kind)
            return
        if kind == "predict" and process.returncode == 0:
            assert (self.out / "predict" / "predictions.csv").is_file()
        else:
            assert process.returncode == 2, "\n".join(self.log) + "\n" + err[-3000:]
        assert top_level(self.out) == before, "a run that failed or only predicted changed the folder's own files"

    def finished_run(self, kind: str) -> None:
        """The step's run is the folder's complete run: checked, then expected from here on."""
        if kind in ("resume", "kill_resume"):
            # resumed at the last step, it trains no further: it keeps the weights of the run it resumed
            self.weights_of.setdefault(top_level(self.out)["model.safetensors"], set()).add(self.seed)
        assert run_seed(self.out, self.weights_of) == self.seed, "\n".join(self.log)
        self.expected = self.seed
        self.weights_of.setdefault(top_level(self.out)["model.safetensors"], set()).add(self.seed)

    def check(self) -> None:
        if self.expected is None:
            assert "model.safetensors" not in top_level(self.out), "\n".join(self.log)
        else:
            assert run_seed(self.out, self.weights_of) == self.expected, "\n".join(self.log)


@pytest.fixture(scope="module")
def setting(repo, tiny_bert, tmp_path_factory, write_csv, sentiment_rows):
    folder = tmp_path_factory.mktemp("property-data")
    train = write_csv(folder / "train.csv", sentiment_rows(96))
    test = write_csv(folder / "test.csv", sentiment_rows(8, seed=1))
    reference = Folder(repo, tiny_bert, train, test, folder / "reference", 0)
    start = time.monotonic()
    subprocess.run(reference.command("train"), cwd=repo, check=True, capture_output=True, timeout=600)
    return repo, tiny_bert, train, test, time.monotonic() - start


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate])  # no shrinking: each step is a process; the log names them
@given(steps=st.lists(step, min_size=2, max_size=4))
def test_the_folder_holds_one_complete_run_whatever_happens_to_the_runs_into_it(setting, kill_when, steps):
    repo, model, train, test, duration = setting
    with tempfile.TemporaryDirectory() as scratch:
        folder = Folder(repo, model, train, test, Path(scratch) / "out", duration, kill_when)
        for kind, trigger, fraction in [("train", None, 0.0), *steps]:
            folder.apply(kind, trigger, fraction)
            folder.check()
        print("\n".join(["sequence:", *folder.log]))  # with -s: what each step was and how it ended
