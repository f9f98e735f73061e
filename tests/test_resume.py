"""Resume after a crash is exact: a run killed with SIGKILL after a checkpoint and resumed ends with the
weights and train_loss of a run that was never interrupted (real subprocesses, tiny models with dropout), for
fine-tuning and for pretraining (its random masks included, in memory and streamed)."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from common.training.checkpoints import COMPLETE_FILE
from common.training.output_dir import STAGING

STEPS_PER_CHECKPOINT = 10
KILL_AFTER = 30  # inside the second epoch of each run below (27 and 20 steps per epoch): the harder case


def with_dropout(model: Path, folder: Path) -> Path:
    """A copy of the tiny model with dropout on, so that resuming must also restore the random state."""
    shutil.copytree(model, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def command(repo: Path, recipe: str, flags: list[str], out: Path) -> list[str]:
    return [sys.executable, str(repo / "recipes" / recipe / "run.py"), *flags, "--output_dir", str(out),
            "--save_strategy", "steps", "--save_steps", str(STEPS_PER_CHECKPOINT), "--save_total_limit", "2",
            "--eval_strategy", "no", "--load_best_model_at_end", "False", "--logging_steps", "7",
            "--disable_tqdm", "True", "--report_to", "none"]


def run(cmd: list[str], repo: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def kill_after_checkpoint(cmd: list[str], repo: Path, out: Path) -> None:
    """Start the run and SIGKILL it as soon as checkpoint-KILL_AFTER is complete (marked so; a run in progress
    writes its checkpoints into the staging folder)."""
    process = subprocess.Popen(cmd, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    saved = out / STAGING / f"checkpoint-{KILL_AFTER}" / COMPLETE_FILE
    while not saved.exists():
        if process.poll() is not None:
            pytest.fail(f"the run ended before checkpoint-{KILL_AFTER}: {process.stderr.read()[-3000:]}")
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed: make it longer"
    assert not (out / "model.safetensors").exists()


def max_weight_difference(a: Path, b: Path) -> float:
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert first.keys() == second.keys()
    return max((first[k].float() - second[k].float()).abs().max().item() for k in first)


def sentiment_flags(folder: Path, model: Path, write_csv, sentiment_rows) -> list[str]:
    train = write_csv(folder / "train.csv", sentiment_rows(480, seed=3))
    return ["--model", str(model), "--train_file", str(train), "--validation_split", "0.1",
            "--num_train_epochs", "3", "--per_device_train_batch_size", "16", "--learning_rate", "1e-3"]


def ner_flags(folder: Path, model: Path, synthetic_conll, *extra: str) -> list[str]:
    return ["--model", str(model), "--train_file", str(synthetic_conll(folder / "train.txt", 320, 0)),
            "--validation_file", str(synthetic_conll(folder / "dev.txt", 20, 1)),
            "--num_train_epochs", "3", "--per_device_train_batch_size", "16", "--learning_rate", "1e-3", *extra]


def pretraining_flags(folder: Path, write_corpus, tiny_flags, *extra: str) -> list[str]:
    """A tiny ERNIE pretrained from scratch with dropout, whole-word masking; about 24 steps an epoch."""
    flags = tiny_flags(write_corpus(folder / "corpus"), folder / "unused", "--max_steps", "60", "--masking",
                       "whole_word", "--pretraining_dropout", "0.1", "--eval_strategy", "steps", *extra)
    return flags[:flags.index("--output_dir")] + flags[flags.index("--output_dir") + 2:]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["sentiment", "ner", "ner-length-grouped", "pretraining", "pretraining-streamed"])
def test_a_killed_run_resumed_ends_exactly_like_an_uninterrupted_one(case, tmp_path, repo, tiny_bert, write_csv,
                                                                     sentiment_rows, synthetic_conll, write_corpus,
                                                                     tiny_flags):
    model = with_dropout(tiny_bert, tmp_path / "model")
    if case == "sentiment":  # its default batch order: length-grouped, shuffled
        recipe, flags = "sentiment", sentiment_flags(tmp_path, model, write_csv, sentiment_rows)
    elif case == "ner":  # its default: random batches, packed
        recipe, flags = "ner", ner_flags(tmp_path, model, synthetic_conll)
    elif case == "ner-length-grouped":
        recipe, flags = "ner", ner_flags(tmp_path, model, synthetic_conll, "--train_sampling_strategy", "group_by_length",
                                         "--pack_batches", "False")
    else:  # the masks are drawn while training: a resumed run must draw the uninterrupted run's
        recipe, flags = "pretraining", pretraining_flags(tmp_path, write_corpus, tiny_flags, "--streaming",
                                                        str(case.endswith("streamed")))
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run(command(repo, recipe, flags, whole), repo)
    kill_after_checkpoint(command(repo, recipe, flags, resumed), repo, resumed)
    done = run(command(repo, recipe, flags, resumed) + ["--resume_from_checkpoint", "True"], repo)
    assert "Resuming from" in done.stderr

    assert max_weight_difference(whole, resumed) <= 1e-6
    results = [json.loads((out / "all_results.json").read_text()) for out in (whole, resumed)]
    assert results[1]["train_loss"] == pytest.approx(results[0]["train_loss"], rel=1e-6)  # the whole run's loss
    assert results[1]["eval_loss"] == pytest.approx(results[0]["eval_loss"], rel=1e-6)
