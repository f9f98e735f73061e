"""Nothing is lost when a user errs: no run removes an earlier one's work before it has its own, saves are whole or
not used, training that went numerically wrong stops, and prediction from a trained folder needs no training flags."""

import errno
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import pipeline

from common.config.process import run_main
from common.training.checkpoints import COMPLETE_FILE, mark_complete
from common.training.output_dir import JOURNAL, LOCK_FILE, STAGING

TRAIN_FLAGS = ["--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--learning_rate", "1e-3",
               "--disable_tqdm", "True", "--bf16", "False", "--save_strategy", "steps", "--save_steps", "3",
               "--save_total_limit", "2", "--eval_strategy", "no", "--load_best_model_at_end", "False"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (but the lock) with its content's hash."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_FILE}


@pytest.fixture
def files(tmp_path, write_csv, sentiment_rows):
    folder = tmp_path / "data"
    folder.mkdir()
    return {"train": write_csv(folder / "train.csv", sentiment_rows(96)),
            "test": write_csv(folder / "test.csv", sentiment_rows(8, seed=1))}


@pytest.fixture
def run(tiny_bert, files, recipe, capsys):
    """run(out, *flags) -> (exit status, stderr): the sentiment recipe as a user runs it (through run_main)."""
    def go(out, *flags, model=None):
        argv = ["--model", str(model or tiny_bert), "--train_file", str(files["train"]), "--output_dir", str(out),
                *TRAIN_FLAGS, *flags]
        capsys.readouterr()
        try:
            run_main(lambda: recipe("sentiment").main(argv))
            status = 0
        except SystemExit as e:
            status = e.code
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return status, err

    return go


def train_into(run, out, files, *flags):
    status, err = run(out, "--do_predict", "--test_file", str(files["test"]), *flags)
    assert status == 0, err
    return snapshot(out)


@pytest.mark.parametrize("flags, message", [
    (["--overwrite_output_dir", "True", "--train_file", "/nonexistent/train.csv"], "/nonexistent/train.csv: file not found"),
    (["--resume_from_checkpoint", "True", "--train_file", "/nonexistent/train.csv"], "file not found"),
    (["--overwrite_output_dir", "True", "--text_column", "sentence"], "no column 'sentence'"),
    (["--overwrite_output_dir", "True", "--model", "/nonexistent/model"], "cannot load its tokenizer"),
])
def test_a_run_that_fails_before_it_has_its_data_and_model_leaves_the_folder_as_it_was(tmp_path, run, files, flags,
                                                                                     message):
    out = tmp_path / "out"
    before = train_into(run, out, files)
    assert any(name.startswith("checkpoint-") for name in before) and "predictions.csv" in before
    status, err = run(out, *flags)
    assert status == 2 and message in err
    assert snapshot(out) == before


def test_overwrite_replaces_the_earlier_run_only_once_its_own_outputs_are_complete(tmp_path, run, files, monkeypatch,
                                                                                   recipe, tiny_bert):
    out = tmp_path / "out"
    before = train_into(run, out, files)
    # The run stops after its final model is saved but before its results are written (as a kill would):
    module = recipe("sentiment")
    monkeypatch.setattr("common.steps.write_run_report", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        module.main(["--model", str(tiny_bert), "--train_file", str(files["train"]), "--output_dir", str(out),
                     *TRAIN_FLAGS, "--overwrite_output_dir", "True", "--seed", "7"])
    monkeypatch.undo()
    staged = out / STAGING
    assert (staged / "model.safetensors").is_file() and not (staged / JOURNAL).exists()
    kept = {name: digest for name, digest in snapshot(out).items() if not name.startswith(("checkpoint-", STAGING))}
    assert kept == {name: digest for name, digest in before.items() if not name.startswith("checkpoint-")}
    assert pipeline("text-classification", model=str(out))("the movie was very good")[0]["label"] in ("pos", "neg")

    # The next run discards the unfinished outputs, and replaces the earlier run once its own are written
    status, err = run(out, "--overwrite_output_dir", "True", "--seed", "8")
    assert status == 0 and f"removing {STAGING}/" in err
    after = snapshot(out)
    assert "predictions.csv" not in after  # the earlier run's: this one predicted nothing
    assert after["model.safetensors"] != before["model.safetensors"]
    assert json.loads((out / "all_results.json").read_text())["seed"] == 8
    assert not staged.exists()


@pytest.mark.slow
def test_an_overwrite_killed_while_training_keeps_the_earlier_runs_checkpoints_and_resumes(tmp_path, run, files, repo,
                                                                                           tiny_bert):
    out = tmp_path / "out"
    command = [sys.executable, str(repo / "recipes" / "sentiment" / "run.py"), "--model", str(tiny_bert),
               "--train_file", str(files["train"]), "--output_dir", str(out), *TRAIN_FLAGS]
    subprocess.run(command, cwd=repo, check=True, capture_output=True, timeout=600)  # a process of its own: its lock
    before = snapshot(out)                                                            # goes with it
    assert sum(name.endswith(COMPLETE_FILE) for name in before) == 2  # two checkpoints of the earlier run
    process = subprocess.Popen(command + ["--seed", "7", "--overwrite_output_dir", "True"], cwd=repo,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    saved = out / STAGING / "checkpoint-6" / COMPLETE_FILE  # the new run's second checkpoint
    while not saved.exists():
        assert process.poll() is None, process.stderr.read()[-3000:]
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    # the earlier run is whole, its checkpoints included; the killed run's checkpoints wait aside
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(STAGING)} == before
    assert (out / STAGING / "checkpoint-3" / COMPLETE_FILE).is_file()

    # resumed, it continues the killed run from there, and only then replaces the earlier run, checkpoints too
    status, err = run(out, "--resume_from_checkpoint", "True", "--seed", "7")
    assert status == 0 and f"Resuming from {out / STAGING / 'checkpoint-6'}" in err, err[-3000:]
    after = snapshot(out)
    assert json.loads((out / "all_results.json").read_text())["seed"] == 7 and not (out / STAGING).exists()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-9"]
    assert after["checkpoint-12/model.safetensors"] != before["checkpoint-12/model.safetensors"]


def test_a_refused_run_leaves_no_folder_behind(tmp_path, run):
    status, err = run(tmp_path / "new" / "out", "--train_file", str(tmp_path / "missing.csv"))
    assert status == 2 and "missing.csv: file not found" in err
    assert not (tmp_path / "new").exists()  # neither the output folder nor the parent created for it


def test_the_error_line_is_the_last_line_even_with_progress_bars(tmp_path, run, files):
    status, err = run(tmp_path / "out", "--learning_rate", "1e9", "--disable_tqdm", "False")
    assert status == 2 and "%|" in err  # progress bars were shown
    assert err.strip().splitlines()[-1].startswith("error: ") and "NaN or infinite" in err.strip().splitlines()[-1]


def test_a_commit_killed_half_way_is_completed_by_the_next_run(tmp_path, run, files):
    out = tmp_path / "out"
    train_into(run, out, files)
    # A journal written, one file moved in: the state a kill during the moves leaves
    staged = out / STAGING
    staged.mkdir()
    (staged / "all_results.json").write_text('{"seed": 99}')
    (staged / "README.md").write_text("the new run's card")
    (staged / JOURNAL).write_text(json.dumps({"move": ["README.md", "all_results.json"], "remove": ["predictions.csv"]}))
    (out / "README.md").unlink()
    (staged / "README.md").rename(out / "README.md")
    status, err = run(out, "--do_train", "False", "--model", str(out), "--output_dir", str(out))
    assert status == 0 and "stopped while moving its complete outputs in; completing that" in err
    assert json.loads((out / "all_results.json").read_text()) == {"seed": 99}
    assert not (out / "predictions.csv").exists() and not staged.exists()


def test_prediction_from_a_trained_folder_needs_only_the_data_options_and_keeps_the_training_results(
        tmp_path, run, files, recipe, tiny_bert):
    out = tmp_path / "out"
    before = train_into(run, out, files, "--eval_strategy", "epoch", "--save_strategy", "epoch",
                        "--load_best_model_at_end", "True", "--validation_split", "0.2")
    # The recipe's default config trains with load_best_model_at_end and evaluates every epoch: none of it applies
    try:
        run_main(lambda: recipe("sentiment").main(["--model", str(out), "--test_file", str(files["test"]),
                                                   "--do_train", "False", "--output_dir", str(out)]))
    except SystemExit as e:
        pytest.fail(f"prediction alone stopped with status {e.code}")
    assert snapshot(out).items() >= {k: v for k, v in before.items()}.items()
    predicted = (out / "predict" / "predictions.csv").read_text().splitlines()
    assert len(predicted) == 1 + 8
    results = json.loads((out / "predict" / "all_results.json").read_text())
    assert "test_accuracy" in results and "train_loss" not in results
    assert json.loads((out / "all_results.json").read_text())["train_loss"] > 0  # the training run's, kept


def test_a_truncated_checkpoint_is_skipped_by_name_and_refused_when_named(tmp_path, run, files):
    out = tmp_path / "out"
    train_into(run, out, files)
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert len(checkpoints) == 2 and all((c / COMPLETE_FILE).is_file() for c in checkpoints)
    newest = checkpoints[-1]
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    final = snapshot(out)["model.safetensors"]

    status, err = run(out, "--resume_from_checkpoint", str(newest))
    assert status == 2 and f"{newest}: not a complete checkpoint (model.safetensors is" in err
    assert snapshot(out)["model.safetensors"] == final

    status, err = run(out, "--resume_from_checkpoint", "True", "--num_train_epochs", "3")
    assert status == 0, err
    assert f"{newest} is incomplete (model.safetensors is" in err and f"Resuming from {checkpoints[0]}" in err


def test_a_checkpoint_without_its_completion_record_is_not_resumed_from(tmp_path, run, files):
    out = tmp_path / "out"
    train_into(run, out, files)
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    (checkpoints[-1] / COMPLETE_FILE).unlink()
    (checkpoints[-1] / "trainer_state.json").unlink()  # as a kill during Trainer's save leaves it
    status, err = run(out, "--resume_from_checkpoint", "True", "--num_train_epochs", "3")
    assert status == 0 and f"Resuming from {checkpoints[0]}" in err and "no trainer_state.json" in err


def test_a_checkpoint_holding_pickled_objects_is_refused_without_a_traceback(tmp_path, run, files):
    out = tmp_path / "out"
    train_into(run, out, files)
    checkpoint = max(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    (checkpoint / "rng_state.pth").write_bytes(pickle.dumps(Path("/etc/passwd")))  # not a plain tensor file
    mark_complete(checkpoint)
    before = snapshot(out)
    status, err = run(out, "--resume_from_checkpoint", str(checkpoint), "--num_train_epochs", "3")
    assert status == 2 and "holds pickled Python objects that are not loaded, for safety" in err
    assert {k: v for k, v in snapshot(out).items() if "checkpoint" not in k} == \
        {k: v for k, v in before.items() if "checkpoint" not in k}


def test_non_finite_training_stops_keeps_the_last_good_checkpoint_and_the_earlier_run(tmp_path, run, files):
    out = tmp_path / "out"
    before = train_into(run, out, files)
    status, err = run(out, "--overwrite_output_dir", "True", "--learning_rate", "1e9")
    assert status == 2 and "are NaN or infinite, so the model can no longer learn" in err
    assert "Lower --learning_rate (now 1e+09)" in err
    after = snapshot(out)
    assert {k: v for k, v in after.items() if not k.startswith("checkpoint-")} == \
        {k: v for k, v in before.items() if not k.startswith("checkpoint-")}


def test_max_steps_0_is_refused(tmp_path, run):
    status, err = run(tmp_path / "out", "--max_steps", "0")
    assert status == 2 and "--max_steps 0 trains for 0 steps" in err


def test_a_truncated_model_folder_given_to_prediction_is_an_error(tmp_path, run, files):
    out = tmp_path / "out"
    train_into(run, out, files)
    broken = tmp_path / "broken"
    shutil.copytree(out, broken, ignore=shutil.ignore_patterns("checkpoint-*", LOCK_FILE))
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    status, err = run(tmp_path / "pred", "--do_train", "False", "--model", str(broken), "--test_file",
                      str(files["test"]))
    assert status == 2 and f"--model_name_or_path {broken}: cannot load the model" in err


def test_an_output_folder_that_cannot_be_written_is_an_error(tmp_path, run):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    status, err = run(blocker / "out")
    assert status == 2 and f"--output_dir {blocker / 'out'}: cannot write there (Not a directory)" in err


def test_an_output_folder_without_write_permission_is_an_error(tmp_path, run):
    folder = tmp_path / "not-mine"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        reason = "Permission denied"
    elif subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                        capture_output=True).returncode == 0:  # root writes through permissions: a read-only mount
        reason = "Read-only file system"
    else:
        pytest.skip("root without the right to mount: no folder here refuses writes")
    try:
        status, err = run(folder / "out")
        assert status == 2 and f"--output_dir {folder / 'out'}: cannot write there ({reason})" in err
    finally:
        if reason == "Permission denied":
            folder.chmod(0o700)
        else:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device", "out/model.safetensors"),
                                   RuntimeError("failed to write: No space left on device (os error 28)")])
def test_a_full_disk_ends_in_one_line(capsys, error):
    def main():
        raise error

    with pytest.raises(SystemExit) as exit_info:
        run_main(main)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the disk is full") and len(err.strip().splitlines()) == 1


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB file system (tmpfs): needs the right to mount, else the test is skipped."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (it needs root)")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_earlier_run(small_disk, run, files):
    out = small_disk / "out"
    train_into(run, out, files, "--save_strategy", "no")
    before = snapshot(out)
    (small_disk / "filler").write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - 40_000))  # less than a model
    status, err = run(out, "--overwrite_output_dir", "True", "--save_strategy", "no")
    assert status == 2 and "error: the disk is full" in err, err[-2000:]
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(STAGING)} == before
