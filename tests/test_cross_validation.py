"""k-fold cross-validation: folds that cover every training row once, stratified and seeded, and the summary."""

import json

import numpy as np
import pytest

from common.config.errors import OptionError
from common.training.cross_validation import fold_indices, summarize


def test_folds_hold_out_every_row_once_stratified_and_seeded():
    labels = [0] * 50 + [1] * 30 + [2] * 7
    folds = fold_indices(labels, 5, seed=42)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held.tolist()) == list(range(len(labels)))  # each row held out exactly once
    for train_rows, held_rows in folds:
        assert not set(train_rows) & set(held_rows)
        counts = np.bincount(np.asarray(labels)[held_rows], minlength=3)
        assert all(abs(c - n / 5) <= 1 for c, n in zip(counts, (50, 30, 7)))  # within one of a stratified split
    again = fold_indices(labels, 5, seed=42)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))
    assert any((a[1] != b[1]).any() for a, b in zip(folds, fold_indices(labels, 5, seed=43)))


def test_too_many_folds_for_the_rarest_class():
    with pytest.raises(OptionError, match=r"--cv_folds 8: the rarest class has 7 training row\(s\)"):
        fold_indices([0] * 50 + [1] * 7, 8, seed=0)
    with pytest.raises(OptionError, match=r"at least 2 folds"):
        fold_indices([0, 1, 0, 1], 1, seed=0)


def test_mean_and_sample_std_are_numpys():
    folds = [{"accuracy": 0.8, "loss": 0.5}, {"accuracy": 0.9, "loss": 0.4}, {"accuracy": 0.7, "loss": 0.6}]
    mean, std = summarize(folds)
    assert mean["accuracy"] == pytest.approx(np.mean([0.8, 0.9, 0.7]))
    assert std["accuracy"] == pytest.approx(np.std([0.8, 0.9, 0.7], ddof=1))


def test_the_recipe_cross_validates_and_repeats_itself(tmp_path, tiny_bert, write_csv, sentiment_rows, recipe):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(150))

    def run(out):
        recipe("sentiment").main(["--model", str(tiny_bert), "--train_file", str(train), "--validation_split", "0",
                                  "--cv_folds", "3", "--num_train_epochs", "6", "--learning_rate", "2e-3", "--warmup_steps", "0",
                                  "--per_device_train_batch_size", "16", "--output_dir", str(out),
                                  "--bf16", "False", "--disable_tqdm", "True"])
        return json.loads((out / "cv_results.json").read_text())

    first = run(tmp_path / "a")
    assert first["cv_folds"] == 3 and len(first["folds"]) == 3
    held = sorted(row for fold in first["folds"] for row in fold["held_out_rows"])
    assert held == list(range(150))
    assert [f["held_out_label_counts"] for f in first["folds"]] == [{"neg": 25, "pos": 25}] * 3
    accuracies = [f["accuracy"] for f in first["folds"]]
    assert first["mean"]["accuracy"] == pytest.approx(np.mean(accuracies))
    assert first["std_dev"]["accuracy"] == pytest.approx(np.std(accuracies, ddof=1))
    assert first["mean"]["accuracy"] > 0.8  # the adjective decides: every fold learns it
    assert (tmp_path / "a" / "fold_0").is_dir() and "mean +- std" in (tmp_path / "a" / "README.md").read_text()
    second = run(tmp_path / "b")
    assert [f["held_out_rows"] for f in second["folds"]] == [f["held_out_rows"] for f in first["folds"]]
    assert [f["accuracy"] for f in second["folds"]] == accuracies
