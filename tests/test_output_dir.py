"""Output folders: one run at a time, an earlier run's files replaced only when asked, other files never touched."""

import fcntl
import json
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest

from common.config.errors import OptionError
from common.training.checkpoints import checkpoint_problem
from common.training.output_dir import LOCK_FILE, STAGING, RunFolder

TRAIN_FLAGS = ["--num_train_epochs", "1", "--per_device_train_batch_size", "16", "--learning_rate", "1e-3",
               "--disable_tqdm", "True", "--bf16", "False"]


@pytest.fixture
def sentiment(tmp_path, tiny_bert, write_csv, sentiment_rows, recipe):
    """sentiment(out, *flags): a one-epoch sentiment run into `out` (the test file predicted)."""
    train = write_csv(tmp_path / "train.csv", sentiment_rows(96))
    test = write_csv(tmp_path / "test.csv", sentiment_rows(8, seed=1))

    def run(out, *flags):
        recipe("sentiment").main(["--model", str(tiny_bert), "--train_file", str(train), "--test_file", str(test),
                                  "--output_dir", str(out), *TRAIN_FLAGS, *flags])

    return run


def test_training_into_an_earlier_runs_folder_stops_and_keeps_its_files(tmp_path, sentiment):
    out = tmp_path / "out"
    sentiment(out, "--do_predict")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != LOCK_FILE}  # (it names its holder)
    with pytest.raises(OptionError, match=r"already holds files .*--overwrite_output_dir True.*"
                                          r"--resume_from_checkpoint True"):
        sentiment(out)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != LOCK_FILE} == before


def test_resume_auto_starts_afresh_continues_a_checkpoint_and_never_replaces_a_finished_run(tmp_path, sentiment,
                                                                                              capfd):
    out, no_checkpoints = tmp_path / "out", ["--save_strategy", "no", "--load_best_model_at_end", "False"]
    sentiment(out, "--resume_from_checkpoint", "auto", *no_checkpoints)  # nothing to resume: a fresh start
    assert "no complete checkpoint" in capfd.readouterr().err and (out / "model.safetensors").is_file()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != LOCK_FILE}
    with pytest.raises(OptionError, match=r"already holds files"):  # finished, no checkpoint: auto is no overwrite
        sentiment(out, "--resume_from_checkpoint", "auto", *no_checkpoints)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != LOCK_FILE} == before

    saved = tmp_path / "saved"
    sentiment(saved, "--save_strategy", "steps", "--save_steps", "2", "--load_best_model_at_end", "False")
    capfd.readouterr()
    sentiment(saved, "--resume_from_checkpoint", "auto", "--num_train_epochs", "2", "--save_strategy", "steps",
              "--save_steps", "2", "--load_best_model_at_end", "False")  # a finished run with checkpoints, continued
    assert f"Resuming from {saved}/checkpoint-" in capfd.readouterr().err


def test_overwrite_removes_everything_of_the_earlier_run(tmp_path, sentiment):
    out = tmp_path / "out"
    sentiment(out, "--do_predict", "--save_strategy", "steps", "--save_steps", "2", "--save_total_limit", "5",
              "--load_best_model_at_end", "False")
    assert (out / "predictions.csv").exists() and list(out.glob("checkpoint-*"))
    sentiment(out, "--overwrite_output_dir", "True", "--save_strategy", "no", "--load_best_model_at_end", "False")
    assert not (out / "predictions.csv").exists()  # this run predicted nothing: no prediction file may remain
    assert not list(out.glob("checkpoint-*"))  # nor the earlier run's checkpoints
    results = json.loads((out / "all_results.json").read_text())
    assert "test_runtime" not in results


def test_the_best_checkpoint_is_named_where_it_ends_up_and_its_checkpoints_stay_whole(tmp_path, sentiment):
    out = tmp_path / "out"
    sentiment(out, "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "steps", "--save_steps", "2",
              "--load_best_model_at_end", "True", "--save_total_limit", "2")
    checkpoints = sorted(out.glob("checkpoint-*"))
    assert checkpoints and not (out / STAGING).exists()
    for state_file in [out / "trainer_state.json", *(c / "trainer_state.json" for c in checkpoints)]:
        best = json.loads(state_file.read_text())["best_model_checkpoint"]
        assert best and Path(best).parent == out and Path(best).is_dir(), (state_file, best)
    assert [checkpoint_problem(c) for c in checkpoints] == [None] * len(checkpoints)


def test_a_folder_no_recipe_wrote_is_never_emptied(tmp_path, sentiment):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(OptionError, match=r"holds files that no recipe run wrote \(thesis.tex\)"):
        sentiment(out, "--overwrite_output_dir", "True")
    assert (out / "thesis.tex").read_text() == "years of work"


def test_a_second_run_into_a_busy_folder_stops(tmp_path, sentiment):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / LOCK_FILE, "a+") as held:  # another run holds the folder
        held.write("pid 12345 on elsewhere, started 2026-01-01 00:00:00\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OptionError, match=r"is in use by another run \(pid 12345 on elsewhere"):
            sentiment(out)
    assert not (out / "model.safetensors").exists()


def test_evaluation_alone_writes_beside_the_trained_model_in_its_own_folder(tmp_path, sentiment, tiny_bert):
    out = tmp_path / "out"
    sentiment(out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    sentiment(out, "--do_train", "False", "--do_eval", "False", "--do_predict", "--model", str(out))
    assert (out / "predict" / "predictions.csv").exists() and (out / "predict" / "all_results.json").exists()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # the training run's, as they were


def end_in(folder: Path, how: str) -> None:
    """A training run into `folder` that writes one file, then leaves its block by `how`."""
    with RunFolder(folder, trains=True, overwrite=True) as run:
        run.stage()
        (run.path / "result.txt").write_text(how)
        if how == "exit 0":
            sys.exit(0)
        if how == "error":
            raise RuntimeError("a bug")
        if how == "mistake":
            raise OptionError("a bad setting")


@pytest.mark.parametrize("how, moved_in", [("return", True), ("exit 0", True), ("error", False), ("mistake", False)])
def test_the_run_folder_does_the_right_thing_however_its_block_ends(tmp_path, how, moved_in):
    out = tmp_path / "out"
    end_in(out, "return")  # an earlier run
    with pytest.raises((SystemExit, RuntimeError, OptionError)) if how != "return" else nullcontext():
        end_in(out, how)
    assert (out / "result.txt").read_text() == (how if moved_in else "return")  # the earlier run's, if not moved in
    assert (out / STAGING / "result.txt").is_file() != moved_in  # kept for a resume, or the next run to discard
    with RunFolder(out, trains=True, overwrite=True):  # the lock went with the block, however it ended
        pass


def test_a_refused_run_removes_the_folders_it_created_and_releases_the_lock(tmp_path):
    out = tmp_path / "new" / "out"
    with pytest.raises(OptionError):
        with RunFolder(out, trains=True):
            raise OptionError("a bad setting, found before anything was written")
    assert not (tmp_path / "new").exists()
    with RunFolder(out, trains=True):  # nothing holds the folder
        pass


def test_a_busy_folder_is_refused_while_its_run_holds_it(tmp_path):
    out = tmp_path / "out"
    with RunFolder(out, trains=True):
        with pytest.raises(OptionError, match="is in use by another run"):
            with RunFolder(out, trains=True):
                pass
