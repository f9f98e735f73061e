"""Property: a pretraining run, or a search with the training of its best trial, killed with SIGKILL at any point
(while it starts, trains, saves a checkpoint or moves its outputs in; once or twice) and then run again ends with
exactly the weights of a run that was never interrupted.

Run again means what a user does: pretraining continues with `--resume_from_checkpoint True` (from the scratch of
a fresh start when no checkpoint was complete); a search, which starts every trial afresh, runs the same command
with `--overwrite_output_dir True` (its seeded study draws the same trials, and nothing of the folder goes before
the new outputs are complete). Each run is a real process.

RESUME_PROPERTY_EXAMPLES sets the number of kill sequences per case (CI: 2).
"""

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
from safetensors.torch import load_file

EXAMPLES = int(os.environ.get("RESUME_PROPERTY_EXAMPLES", "2"))
TRIGGERS = ["time", "checkpoint", "journal"]  # what the kill waits for before its random delay
SAVING = ["--save_strategy", "steps", "--save_steps", "10", "--save_total_limit", "2", "--logging_steps", "5",
          "--disable_tqdm", "True", "--report_to", "none"]

kill = st.tuples(st.sampled_from(TRIGGERS), st.floats(0, 1))


def pretraining_command(repo: Path, folder: Path, write_corpus, tiny_flags):
    """A tiny ERNIE pretrained for 60 steps with dropout and whole-word masking, a checkpoint every 10."""
    corpus = write_corpus(folder / "corpus")

    def command(out: Path, again: bool) -> list[str]:
        flags = tiny_flags(corpus, out, "--max_steps", "60", "--masking", "whole_word", "--pretraining_dropout",
                           "0.1", "--eval_steps", "30", *SAVING)
        return [sys.executable, str(repo / "recipes" / "pretraining" / "run.py"), *flags,
                *(["--resume_from_checkpoint", "True"] if again else [])]

    return command


def search_command(repo: Path, folder: Path, tiny_bert, write_csv, sentiment_rows):
    """Two trials over two learning rates (in memory, seeded), then the best one trained with checkpoints."""
    train = write_csv(folder / "train.csv", sentiment_rows(96))
    space = folder / "space.yaml"
    space.write_text(yaml.safe_dump({"learning_rate": {"type": "categorical", "choices": [1e-5, 3e-3]}}))

    def command(out: Path, again: bool) -> list[str]:
        return [sys.executable, str(repo / "recipes" / "sentiment" / "run.py"), "--model", str(tiny_bert),
                "--train_file", str(train), "--output_dir", str(out), "--num_train_epochs", "3",
                "--per_device_train_batch_size", "16", "--eval_strategy", "epoch", "--load_best_model_at_end", "False",
                "--bf16", "False", "--hp_search_trials", "2", "--hp_search_space", str(space), "--hp_search_pruner",
                "none", "--seed", "5", *SAVING, *(["--overwrite_output_dir", "True"] if again else [])]

    return command


def weights(out: Path) -> dict:
    return load_file(out / "model.safetensors")


def run_again(command, out: Path, repo: Path) -> subprocess.CompletedProcess:
    """What a user runs after a kill; a resume with no complete checkpoint yet starts afresh, as a user would."""
    done = subprocess.run(command(out, True), cwd=repo, capture_output=True, text=True, timeout=900)
    if done.returncode == 2 and "no complete checkpoint-* folder" in done.stderr:
        done = subprocess.run(command(out, False), cwd=repo, capture_output=True, text=True, timeout=900)
    return done


@pytest.fixture(scope="module", params=["pretraining", "search"])
def case(request, repo, tmp_path_factory, write_corpus, tiny_flags, tiny_bert, write_csv, sentiment_rows):
    """(command, reference weights, duration of an uninterrupted run) for each kind of run."""
    folder = tmp_path_factory.mktemp(request.param)
    command = (pretraining_command(repo, folder, write_corpus, tiny_flags) if request.param == "pretraining"
               else search_command(repo, folder, tiny_bert, write_csv, sentiment_rows))
    start = time.monotonic()
    done = subprocess.run(command(folder / "reference", False), cwd=repo, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return command, weights(folder / "reference"), time.monotonic() - start


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate])  # no shrinking: each step is a process; the log names them
@given(kills=st.lists(kill, min_size=1, max_size=2))
def test_a_run_killed_anywhere_and_run_again_ends_with_the_uninterrupted_weights(case, repo, kill_when, kills):
    command, reference, duration = case
    log = []
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out"
        for k, (trigger, fraction) in enumerate(kills):
            process = subprocess.Popen(command(out, k > 0), cwd=repo, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)
            killed = kill_when(process, out, trigger, fraction, duration)
            _, err = process.communicate(timeout=900)
            log.append(f"{trigger} {fraction:.2f}: {'killed' if killed else process.returncode}")
            assert "Traceback" not in err, "\n".join(log) + "\n" + err[-3000:]
        done = run_again(command, out, repo)
        log.append(f"again: {done.returncode}")
        assert done.returncode == 0 and "Traceback" not in done.stderr, "\n".join(log) + "\n" + done.stderr[-3000:]
        final = weights(out)
        assert final.keys() == reference.keys()
        different = [name for name in final if not (final[name] == reference[name]).all()]
        assert not different, "\n".join(log) + f"\nweights that differ: {different[:5]}"
        print("\n".join(["sequence:", *log]))  # with -s: what each kill was and how it ended
