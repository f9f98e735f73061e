"""Long texts in classification (--long_text): exact head+tail cuts, windows that cover every token, one
prediction per document, and a task only the end of each text decides."""

import csv
import json
import random

import numpy as np
import pytest

from common.config.errors import OptionError
from common.data.errors import DataError
from common.data.tables import Split, TextData
from common.models.tokenizer import load_tokenizer
from common.config.arguments import ModelArguments
from common.tokens.long_text import first_of_each, pool_windows
from common.tokens.tokenization import tokenize_splits

FILLER = "the a is was of it this that and movie film plot actor sports tech news world game match market stock".split()


def long_rows(n: int, seed: int = 0, length: int = 60) -> list[tuple[str, str]]:
    """Texts of `length` neutral words whose label is decided by one adjective three words before the end."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = [rng.choice(FILLER) for _ in range(length)]
        words[-3] = rng.choice("good great superb lovely".split() if label == "pos" else "bad awful poor dull".split())
        rows.append((" ".join(words), label))
    return rows


def text_data(texts, pairs=None) -> TextData:
    import pandas as pd

    frame = pd.DataFrame({"text": texts, "_line": range(2, len(texts) + 2), "labels": [i % 2 for i in range(len(texts))]})
    if pairs is not None:
        frame["pair"] = pairs
    return TextData({"train": Split(frame, "memory.csv", "line")}, "text", "label", "pair" if pairs is not None else None)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return load_tokenizer(ModelArguments(str(tiny_bert)))


def test_pooling_means_or_maxes_each_documents_windows():
    logits = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0], [7.0, 1.0]], dtype=np.float32)
    documents = np.array([0, 0, 1, 2])
    assert pool_windows(logits, documents).tolist() == [[2.0, 1.0], [0.0, 5.0], [7.0, 1.0]]
    assert pool_windows(logits, documents, "max").tolist() == [[3.0, 2.0], [0.0, 5.0], [7.0, 1.0]]
    assert first_of_each(np.array([1, 1, 0, 1]), documents).tolist() == [1, 0, 1]
    assert pool_windows(logits, np.arange(4)).tobytes() == logits.tobytes()  # one window: the logits themselves


def test_windows_cover_every_token_and_keep_special_tokens_whole(tokenizer, caplog):
    texts = [long_rows(1, seed=s, length=70)[0][0] for s in range(3)]
    texts.insert(1, "the movie was good")  # short: one window, exactly its ordinary encoding
    data = text_data(texts)
    tokenized = tokenize_splits(data, tokenizer, 16, long_text="windows", stride=4)
    windows = tokenized["train"]
    plain = tokenizer(texts)["input_ids"]
    documents = np.asarray(windows["document"])
    assert sorted(set(documents.tolist())) == [0, 1, 2, 3] and (np.diff(documents) >= 0).all()
    assert windows["input_ids"][int(np.flatnonzero(documents == 1)[0])] == plain[1]
    for d, ids in enumerate(plain):
        rows = [windows["input_ids"][k] for k in np.flatnonzero(documents == d)]
        assert all(r[0] == tokenizer.cls_token_id and r[-1] == tokenizer.sep_token_id and len(r) <= 16 for r in rows)
        assert all(tokenizer.cls_token_id not in r[1:-1] and tokenizer.sep_token_id not in r[1:-1] for r in rows)
        text = ids[1:-1]
        # the windows' texts, with the stride's 4 shared tokens taken off all but the first, are the whole text
        rebuilt = rows[0][1:-1] + [t for r in rows[1:] for t in r[1:-1][4:]]
        assert rebuilt == text
        assert all(r[1:-1][:4] == prev[1:-1][-4:] for prev, r in zip(rows, rows[1:]))  # neighbours overlap by 4
    assert tokenized.long_texts["train"] == {"long_text": "windows", "max_length": 16, "stride": 4, "texts": 4,
                                        "longer_than_max_length": 3, "windows": len(windows)}
    assert "3 of 4 texts were longer than 16 tokens and were split into overlapping windows" in caplog.text


def test_head_tail_keeps_exactly_the_first_and_last_tokens(tokenizer):
    texts = [long_rows(1, seed=s, length=50)[0][0] for s in range(2)] + ["the film was dull"]
    cut = tokenize_splits(text_data(texts), tokenizer, 20, long_text="head_tail", head_tokens=5)["train"]
    for ids, row in zip(tokenizer(texts)["input_ids"], cut):
        text = ids[1:-1]
        if len(ids) <= 20:
            assert row["input_ids"] == ids
        else:
            assert row["input_ids"] == [tokenizer.cls_token_id, *text[:5], *text[-13:], tokenizer.sep_token_id]
            assert len(row["attention_mask"]) == len(row["token_type_ids"]) == 20
    padded = tokenize_splits(text_data(texts), tokenizer, 20, pad_to_max_length=True, long_text="head_tail",
                             head_tokens=5)["train"]
    assert {len(ids) for ids in padded["input_ids"]} == {20} and padded["input_ids"][0] == cut["input_ids"][0]


def test_text_pairs_window_the_second_text_and_keep_the_first_whole(tokenizer):
    second = long_rows(1, length=60)[0][0]
    windows = tokenize_splits(text_data(["good movie"], [second]), tokenizer, 24, long_text="windows", stride=4)["train"]
    first = tokenizer("good movie", add_special_tokens=False)["input_ids"]
    assert len(windows) > 2
    assert all(ids[1:1 + len(first)] == first for ids in windows["input_ids"])
    with pytest.raises(OptionError, match="head_tail is for single texts"):
        tokenize_splits(text_data(["good movie"], [second]), tokenizer, 24, long_text="head_tail")
    first = long_rows(1, length=20)[0][0]  # 20 tokens: with 3 special ones, no room for windows of the second
    with pytest.raises(DataError, match=r"memory.csv, line 3: the first text of the pair is 20 tokens long"):
        tokenize_splits(text_data(["good movie", first], [second, second]), tokenizer, 24, long_text="windows", stride=4)


@pytest.mark.parametrize("settings, message", [
    ({"long_text": "windows", "stride": 14}, r"--stride 14 must be smaller than the 14 tokens"),
    ({"long_text": "head_tail", "head_tokens": 14}, r"--head_tokens 14 must be smaller than the 14 tokens"),
    ({"long_text": "truncate", "head_tokens": 4}, r"--head_tokens is for --long_text head_tail"),
])
def test_settings_that_cannot_work(tokenizer, settings, message):
    with pytest.raises(OptionError, match=message):
        tokenize_splits(text_data(["the movie"]), tokenizer, 16, **settings)


def run(recipe, tiny_bert, tmp_path, long_text, *flags):
    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    for path, rows in ((train, long_rows(160, seed=0)), (dev, long_rows(60, seed=1))):
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([("text", "label"), *rows])
    out = tmp_path / long_text
    recipe("sentiment").main(["--model", str(tiny_bert), "--train_file", str(train), "--validation_file", str(dev),
                              "--test_file", str(dev), "--do_predict", "--long_text", long_text, "--max_seq_length", "24",
                              "--stride", "4", "--num_train_epochs", "12", "--learning_rate", "3e-3",
                              "--warmup_steps", "0", "--per_device_train_batch_size", "16", "--eval_strategy", "no",
                              "--save_strategy", "no", "--load_best_model_at_end", "False", *flags,
                              "--output_dir", str(out), "--bf16", "False", "--disable_tqdm", "True"])
    return json.loads((out / "all_results.json").read_text()), out


@pytest.mark.parametrize("long_text", ["truncate", "head_tail", "windows"])
def test_only_reading_the_end_learns_a_label_decided_at_the_end(recipe, tiny_bert, tmp_path, long_text):
    results, out = run(recipe, tiny_bert, tmp_path, long_text, *(["--head_tokens", "4"] if long_text == "head_tail" else []))
    if long_text == "truncate":
        assert results["eval_accuracy"] < 0.7  # the first 22 tokens never hold the adjective
    else:
        assert results["eval_accuracy"] >= 0.9
    assert results["long_texts"]["validation"]["longer_than_max_length"] == 60
    with open(out / "predictions.csv", newline="") as f:
        predicted = list(csv.DictReader(f))
    assert len(predicted) == 60  # one row per document, in the file's order
    assert [row["text"] for row in predicted] == [text for text, _ in long_rows(60, seed=1)]
    if long_text == "windows":
        assert results["long_texts"]["validation"]["windows"] > 2 * 60 and results["window_pooling"] == "mean"
        assert results["sizes"]["validation"] == 60


def write_long_csvs(tmp_path, labels=lambda label: label):
    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    for path, rows in ((train, long_rows(160, seed=0)), (dev, long_rows(60, seed=1))):
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([("text", "label"), *[(text, labels(label)) for text, label in rows]])
    return train, dev


def test_multi_label_documents_from_their_windows(recipe, tiny_bert, tmp_path):
    # a second label on every text, and the adjective's: logits pooled, then one sigmoid per label
    train, dev = write_long_csvs(tmp_path, lambda label: f"{label}|review")
    out = tmp_path / "out"
    recipe("text_classification").main([
        "--model", str(tiny_bert), "--train_file", str(train), "--validation_file", str(dev), "--multi_label",
        "--label_separator", "|", "--long_text", "windows", "--max_seq_length", "24", "--stride", "4",
        "--num_train_epochs", "12", "--learning_rate", "3e-3", "--warmup_steps", "0", "--per_device_train_batch_size", "16",
        "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "False",
        "--output_dir", str(out), "--bf16", "False", "--disable_tqdm", "True"])
    results = json.loads((out / "all_results.json").read_text())
    assert results["labels"] == ["neg", "pos", "review"]
    assert results["eval_f1_micro"] >= 0.9 and results["eval_recall_review"] == 1.0
    assert results["long_texts"]["validation"]["texts"] == 60


def test_cross_validation_keeps_a_documents_windows_in_one_fold(recipe, tiny_bert, tmp_path):
    train, _ = write_long_csvs(tmp_path)
    out = tmp_path / "cv"
    recipe("sentiment").main(["--model", str(tiny_bert), "--train_file", str(train), "--validation_split", "0",
                              "--cv_folds", "2", "--long_text", "windows", "--max_seq_length", "24", "--stride", "4",
                              "--num_train_epochs", "12", "--learning_rate", "3e-3", "--warmup_steps", "0",
                              "--per_device_train_batch_size", "16", "--output_dir", str(out), "--bf16", "False",
                              "--disable_tqdm", "True"])
    summary = json.loads((out / "cv_results.json").read_text())
    assert sorted(d for fold in summary["folds"] for d in fold["held_out_rows"]) == list(range(160))  # documents
    assert [fold["held_out_label_counts"] for fold in summary["folds"]] == [{"neg": 40, "pos": 40}] * 2
    assert all(fold["accuracy"] >= 0.9 for fold in summary["folds"])


def test_windows_padded_to_the_maximum_predict_the_same(tokenizer):
    texts = [long_rows(1, seed=s, length=40)[0][0] for s in range(3)]
    dynamic = tokenize_splits(text_data(texts), tokenizer, 16, long_text="windows", stride=4)["train"]
    padded = tokenize_splits(text_data(texts), tokenizer, 16, pad_to_max_length=True, long_text="windows",
                             stride=4)["train"]
    assert padded["document"] == dynamic["document"] and {len(ids) for ids in padded["input_ids"]} == {16}
    assert [ids[:len(d)] for ids, d in zip(padded["input_ids"], dynamic["input_ids"])] == dynamic["input_ids"]


@pytest.mark.slow
def test_windows_under_torchrun_match_one_process(tiny_bert, tmp_path, repo):
    import os
    import subprocess
    import sys

    train, dev = write_long_csvs(tmp_path)

    def launch(launcher, out, batch):
        command = [*launcher, "recipes/sentiment/run.py", "--model", str(tiny_bert), "--train_file", str(train),
                   "--validation_file", str(dev), "--test_file", str(dev), "--do_predict", "--long_text", "windows",
                   "--max_seq_length", "24", "--stride", "4", "--num_train_epochs", "12", "--learning_rate", "3e-3",
                   "--warmup_steps", "0", "--per_device_train_batch_size", str(batch), "--eval_strategy", "no",
                   "--save_strategy", "no", "--load_best_model_at_end", "False", "--output_dir", str(out),
                   "--bf16", "False", "--disable_tqdm", "True"]
        done = subprocess.run(command, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        with open(out / "predictions.csv", newline="") as f:
            return json.loads((out / "all_results.json").read_text()), list(csv.DictReader(f))

    one, one_rows = launch([sys.executable], tmp_path / "one", 16)
    two, two_rows = launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                            "29541"], tmp_path / "two", 8)  # the same global batch
    assert two["world_size"] == 2 and one["eval_accuracy"] >= 0.9 and two["eval_accuracy"] >= 0.9
    assert len(two_rows) == 60 and [r["text"] for r in two_rows] == [r["text"] for r in one_rows]
    agree = sum(a["predicted"] == b["predicted"] for a, b in zip(one_rows, two_rows))
    assert agree >= 57, agree


def test_tokenized_splits_are_cached_and_several_processes_tokenize_them_alike(tmp_path, tokenizer, caplog):
    caplog.set_level("INFO", logger="common.tokens.tokenization")
    texts = [f"the movie was {'good' if i % 2 else 'bad'} " + "very " * (i % 9) for i in range(300)]
    one = tokenize_splits(text_data(texts), tokenizer, 12, cache_dir=tmp_path / "a")["train"]
    two = tokenize_splits(text_data(texts), tokenizer, 12, cache_dir=tmp_path / "b",
                          preprocessing_num_workers=2)["train"]
    assert two["input_ids"] == one["input_ids"] and two["labels"] == one["labels"]  # the rows in their order
    assert len(list((tmp_path / "b" / "recipe_tokenized").glob("*_of_00002.arrow"))) == 2
    assert "read from the cache" not in caplog.text

    again = tokenize_splits(text_data(texts), tokenizer, 12, cache_dir=tmp_path / "b")["train"]  # one process now
    assert "train: 300 tokenized rows read from the cache" in caplog.text and again["input_ids"] == one["input_ids"]
    caplog.clear()
    changed = texts[:-1] + ["the plot was dull"]  # one row of the file changed: never the stale copy
    fresh = tokenize_splits(text_data(changed), tokenizer, 12, cache_dir=tmp_path / "b")["train"]
    assert "read from the cache" not in caplog.text and fresh["input_ids"][:-1] == one["input_ids"][:-1]
    assert fresh["input_ids"][-1] == tokenizer("the plot was dull")["input_ids"]
    tokenize_splits(text_data(texts), tokenizer, 12, cache_dir=tmp_path / "b", overwrite_cache=True)
    assert "read from the cache" not in caplog.text
