"""Loading, checking and splitting: every bad input stops with the file and line named."""

import json

import pandas as pd
import pytest

from common.config.arguments import TextDataArguments
from common.data.benchmarks import clean_ag_news
from common.data.errors import DataError
from common.data.labels import build_label_list, encode_labels
from common.data.tables import read_table
from common.data.text import load_text_data


def args(**kw):
    return TextDataArguments(validation_split=kw.pop("validation_split", 0.0), **kw)


# ---------------------------------------------------------------------------- formats


def test_csv_tsv_json_and_jsonl_read_alike(tmp_path, write_csv):
    rows = [("a good film", "pos"), ('said "awful"', "neg")]
    write_csv(tmp_path / "d.csv", rows)
    (tmp_path / "d.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t, "label": l}) + "\n\n" for t, l in rows))
    (tmp_path / "d.json").write_text(json.dumps([{"text": t, "label": l} for t, l in rows]))
    for name in ("d.csv", "d.tsv", "d.jsonl", "d.json"):
        frame = read_table(tmp_path / name).frame
        assert frame[["text", "label"]].values.tolist() == [list(r) for r in rows], name
    assert read_table(tmp_path / "d.jsonl").frame["_line"].tolist() == [1, 3]  # blank lines skipped, lines kept


def test_dataframe_input(tmp_path):
    frames = {"train": pd.DataFrame({"text": ["x y", "z w", "a b", "c d"], "label": ["p", "q", "p", "q"]}),
              "validation": pd.DataFrame({"text": ["e f"], "label": ["q"]})}
    raw = load_text_data(args(), seed=0, frames=frames)
    assert len(raw.splits["train"].frame) == 4 and raw.splits["validation"].source == "DataFrame 'validation'"


# ---------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope.csv: file not found"):
        load_text_data(args(train_file=str(tmp_path / "nope.csv")), seed=0)


@pytest.mark.parametrize("content", ["", "text,label\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=r"empty.csv: (file is empty|no data rows)"):
        load_text_data(args(train_file=str(path)), seed=0)


@pytest.mark.parametrize("column", ["text", "label"])
def test_missing_column_lists_columns_found(tmp_path, column, write_csv):
    header = ("sentence", "label", "id") if column == "text" else ("text", "polarity", "id")
    path = write_csv(tmp_path / "d.csv", [("a", "b", "c")], header=header)
    with pytest.raises(DataError, match=rf"d.csv: no column '{column}' \(columns found: {', '.join(header)}\)"):
        load_text_data(args(train_file=str(path)), seed=0)


def test_empty_text_names_the_line(tmp_path, write_csv):
    path = write_csv(tmp_path / "d.csv", [("fine", "pos"), ("   ", "neg")])
    with pytest.raises(DataError, match=r"d.csv, line 3: empty text in column 'text'"):
        load_text_data(args(train_file=str(path)), seed=0)


def test_missing_label_names_the_line(tmp_path, write_csv):
    path = write_csv(tmp_path / "d.csv", [("fine", "pos"), ("bad", "neg"), ("odd", "")])
    with pytest.raises(DataError, match=r"d.csv, line 4: missing label in column 'label'"):
        load_text_data(args(train_file=str(path)), seed=0)


def test_missing_label_in_json(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": null}\n')
    with pytest.raises(DataError, match=r"d.jsonl, line 2: missing label"):
        load_text_data(args(train_file=str(path)), seed=0)


@pytest.mark.parametrize("bad_row, found", [('"four","fields","here",x', 4), ('"one field"', 1)])
def test_csv_row_with_wrong_number_of_fields(tmp_path, bad_row, found):
    path = tmp_path / "d.csv"
    path.write_text(f'text,label,source\n"ok",pos,web\n"fine",neg,web\n{bad_row}\n"last",pos,web\n')
    with pytest.raises(DataError, match=rf"d.csv, line 4: expected 3 fields, found {found}"):
        read_table(path)


def test_a_quote_left_open_is_an_error_not_a_swallowed_file(tmp_path):
    # the issue's case: 'the film was very good,"pos' took the 53 rows after it into one label, exit 0
    rows = "".join(f"row {i},{'pos' if i % 2 else 'neg'}\n" for i in range(60))
    path = tmp_path / "d.csv"
    path.write_text(f'text,label\nfine,pos\nthe film was very good,"pos\n{rows}')
    with pytest.raises(DataError, match=r"d.csv, line 3: a quote opened in this row never closes \(it would swallow "
                                        r"the rest of the file, to line 63, into one field\)"):
        read_table(path)
    path.write_text(f'text,label\nfine,pos\n"a "quoted" word",neg\n{rows}')  # quotes inside a quoted field, not doubled
    with pytest.raises(DataError, match=r"d.csv, line 3: bad CSV quoting"):
        read_table(path)


def test_a_label_spanning_lines_is_an_error(tmp_path):
    # the quote closes rows later: the field holds the rows between it, which is legal CSV but not a label
    path = tmp_path / "d.csv"
    path.write_text('text,label\nfine,pos\ngood,"pos\nbad,neg\nworse,neg"\nlast,neg\n')
    with pytest.raises(DataError, match=r"d.csv, line 3: the label in column 'label' runs over several lines "
                                        r"\('pos\\nbad,neg\\nworse,neg'...\): is a quote left open\?"):
        load_text_data(args(train_file=str(path)), seed=0)


def test_line_breaks_inside_quotes_keep_one_row_each_numbered_by_their_first_line(tmp_path, caplog):
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"two\nlines",pos\nnext,neg\n')
    with caplog.at_level("INFO"):
        split = read_table(path)
    assert split.frame["text"].tolist() == ["two\nlines", "next"] and split.frame["_line"].tolist() == [2, 4]
    assert "1 row(s) hold line breaks inside quotes (first at line 2)" in caplog.text


def test_training_data_with_one_class_is_an_error(tmp_path, write_csv):
    train = write_csv(tmp_path / "train.csv", [("a", "pos"), ("b", "pos"), ("c", "pos")])
    raw = load_text_data(args(train_file=str(train)), seed=0)
    with pytest.raises(DataError, match=r"train.csv: every training row has the label 'pos'; a classifier needs at "
                                        r"least two classes"):
        build_label_list(raw)


def test_invalid_json_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", label: "y"}\n')
    with pytest.raises(DataError, match=r"d.jsonl, line 2: invalid JSON"):
        read_table(path)


def test_unknown_label_in_validation(tmp_path, write_csv):
    train = write_csv(tmp_path / "train.csv", [("a", "pos"), ("b", "neg")])
    dev = write_csv(tmp_path / "dev.csv", [("c", "pos"), ("d", "neutral")])
    raw = load_text_data(args(train_file=str(train), validation_file=str(dev)), seed=0)
    labels = build_label_list(raw)
    with pytest.raises(DataError, match=r"dev.csv, line 3: label 'neutral' is not in the training labels \(neg, pos\)"):
        encode_labels(raw, labels)


# ---------------------------------------------------------------------------- labels and splits


def test_label_order_is_stable_and_numeric_aware(tmp_path, write_csv):
    train = write_csv(tmp_path / "t.csv", [("a", "10"), ("b", "2"), ("c", "1"), ("d", "2")])
    raw = load_text_data(args(train_file=str(train)), seed=0)
    assert build_label_list(raw) == ["1", "2", "10"]
    train = write_csv(tmp_path / "t.csv", [("a", "sports"), ("b", "business"), ("c", "world")])
    raw = load_text_data(args(train_file=str(train)), seed=0)
    labels = build_label_list(raw)
    encode_labels(raw, labels)
    assert labels == ["business", "sports", "world"]
    assert raw.splits["train"].frame["labels"].tolist() == [1, 0, 2]


def test_multi_label_targets_from_strings_and_lists(tmp_path, write_csv):
    train = write_csv(tmp_path / "t.csv", [("a", "tech|world"), ("b", "sports"), ("c", "")])
    raw = load_text_data(args(train_file=str(train), multi_label=True, label_separator="|"), seed=0)
    labels = build_label_list(raw, multi_label=True, separator="|")
    assert labels == ["sports", "tech", "world"]
    jsonl = tmp_path / "v.jsonl"
    jsonl.write_text('{"text": "d", "label": ["world", "sports"]}\n{"text": "e", "label": []}\n')
    raw.splits["validation"] = load_text_data(args(train_file=str(jsonl), multi_label=True), seed=0).splits["train"]
    encode_labels(raw, labels, multi_label=True, separator="|")
    assert raw.splits["train"].frame["labels"].tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert raw.splits["validation"].frame["labels"].tolist() == [[1, 0, 1], [0, 0, 0]]


def test_stratified_seeded_split_keeps_file_order(tmp_path, write_csv, shared_data):
    rows = [(f"text {i}", "rare" if i % 5 == 0 else "common") for i in range(200)]
    train = write_csv(tmp_path / "t.csv", rows)
    raw = load_text_data(args(train_file=str(train), validation_split=0.1, test_split=0.1), seed=3)
    frames = {k: v.frame for k, v in raw.splits.items()}
    assert {k: len(v) for k, v in frames.items()} == {"train": 160, "validation": 20, "test": 20}
    for frame in frames.values():  # each split keeps the 1-in-5 share of the rare label
        assert (frame["label"] == "rare").mean() == 0.2
        assert frame["_line"].is_monotonic_increasing
    assert set().union(*(set(f["text"]) for f in frames.values())) == {r[0] for r in rows}  # nothing lost
    again = load_text_data(args(train_file=str(train), validation_split=0.1, test_split=0.1), seed=3)
    assert again.splits["validation"].frame["text"].tolist() == frames["validation"]["text"].tolist()
    other = load_text_data(args(train_file=str(train), validation_split=0.1, test_split=0.1), seed=4)
    assert other.splits["validation"].frame["text"].tolist() != frames["validation"]["text"].tolist()
    assert any("stratified by label" in note and "train 160, validation 20, test 20" in note for note in raw.notes)


# ---------------------------------------------------------------------------- benchmark folders




@pytest.mark.needs_data("sst2")
def test_sst2_benchmark_folder(shared_data):
    raw = load_text_data(args(benchmark="sst2", data_dir=str(shared_data)), seed=42)
    sizes = {k: len(v.frame) for k, v in raw.splits.items()}
    assert sizes == {"train": 67349, "validation": 872, "test": 1821}
    assert raw.label_names == ["negative", "positive"]
    assert raw.splits["train"].frame["label"].iloc[0] == "negative"  # "hide new secretions ..." is 0
    assert "label" not in raw.splits["test"].frame


@pytest.mark.needs_data("ag_news")
def test_ag_news_is_split_80_10_10_with_readable_text(shared_data):
    raw = load_text_data(args(benchmark="ag_news", data_dir=str(shared_data), validation_split=0.1, test_split=0.1),
                    seed=42)
    sizes = {k: len(v.frame) for k, v in raw.splits.items()}
    assert sizes == {"train": 6080, "validation": 760, "test": 760}
    assert raw.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    for split in raw.splits.values():
        assert (split.frame["label"].value_counts() == len(split.frame) // 4).all()  # 1,900 per class, stratified
    text = " ".join(raw.splits["train"].frame["text"])
    assert " #36;" not in text and "\\" not in text


def test_clean_ag_news():
    assert clean_ag_news("a second\\team for the  #36;10 million,  quot;hi quot; AT amp;T") == \
        'a second team for the $10 million, "hi" AT&T'
    assert clean_ag_news("stocks  lt;A HREF=x gt;and a rssfeed;") == "stocks <A HREF=x>and a rssfeed;"


def test_dataset_folder_through_load_dataset_keeps_class_names(tmp_path):
    """--dataset_name goes through datasets.load_dataset (a Hub id, or here a local folder of parquet files)."""
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["sad", "happy"])})
    for split, rows in {"train": [("yay", 1), ("meh", 0), ("wow", 1)], "test": [("ok", -1)]}.items():
        table = {"text": [r[0] for r in rows], "label": [r[1] for r in rows]}
        datasets.Dataset.from_dict(table, features=features).to_parquet(str(tmp_path / f"{split}.parquet"))
    raw = load_text_data(args(dataset_name=str(tmp_path)), seed=0)
    assert raw.label_names == ["sad", "happy"]
    assert raw.splits["train"].frame["label"].tolist() == ["happy", "sad", "happy"]
    assert raw.splits["test"].frame["label"].isna().all()  # -1: unlabelled, not a class
    assert set(raw.splits) == {"train", "test"}


def test_hub_splits_other_than_train_validation_test_are_left_out_and_said(monkeypatch):
    import datasets

    splits = {name: datasets.Dataset.from_dict({"text": ["a", "b"], "label": ["x", "y"]})
              for name in ("train", "dev", "unsupervised")}
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config: datasets.DatasetDict(splits))
    raw = load_text_data(args(dataset_name="some/dataset"), seed=0)
    assert set(raw.splits) == {"train", "validation"}  # "dev" is the validation split
    assert "some/dataset: split 'unsupervised' not used (only train, validation/dev and test are)" in raw.notes


@pytest.mark.parametrize("encoding, text", [("gbk", "这部电影很好"), ("latin-1", "très bon film")])
def test_a_file_not_in_utf8_names_its_line_and_the_fix(tmp_path, encoding, text):
    path = tmp_path / "train.csv"
    path.write_bytes(f"text,label\nfine film,pos\n{text},pos\n".encode(encoding))
    with pytest.raises(DataError, match=r"train.csv, line 3: not utf-8 text \(byte 0x..\); give the file's encoding "
                                        r"with --encoding"):
        load_text_data(args(train_file=str(path)), seed=0)
    # read as it is with --encoding, or converted to UTF-8 (a byte-order mark, as Excel writes, is skipped)
    assert load_text_data(args(train_file=str(path), encoding=encoding), seed=0).splits["train"].frame["text"][1] == text
    path.write_bytes(f"text,label\nfine film,pos\n{text},pos\n".encode("utf-8-sig"))
    assert load_text_data(args(train_file=str(path)), seed=0).splits["train"].frame["text"].tolist()[1] == text
    with pytest.raises(DataError, match=r"--encoding klingon: not a text encoding Python knows"):
        load_text_data(args(train_file=str(path), encoding="klingon"), seed=0)


def test_skip_bad_rows_leaves_out_and_lists_every_bad_row(tmp_path, write_csv):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\ngreat hotel,pos\n,neg\nclean rooms,pos\nnoisy,\nbad,neg,extra\nrude staff,neg\n")
    with pytest.raises(DataError, match=r"reviews.csv, line 6: expected 2 fields, found 3"):
        load_text_data(args(train_file=str(path)), seed=0)  # without the option the error stays (shape is read first)
    raw = load_text_data(args(train_file=str(path), skip_bad_rows=True), seed=0)
    assert raw.splits["train"].frame["text"].tolist() == ["great hotel", "clean rooms", "rude staff"]
    assert raw.skipped == {"train": [{"line": 3, "problem": "empty text in column 'text'"},
                                     {"line": 5, "problem": "missing label in column 'label'"},
                                     {"line": 6, "problem": "expected 2 fields, found 3"}]}
    assert ("train: skipped 3 bad row(s) of " + str(path) + " (--skip_bad_rows), 3 kept: line 3: empty text in column "
            "'text'; line 5: missing label in column 'label'; line 6: expected 2 fields, found 3") in raw.notes
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"text": "fine", "label": "pos"}\n{"text": "odd", label: 1}\n[1, 2]\n{"text": "", "label": "neg"}\n')
    raw = load_text_data(args(train_file=str(jsonl), skip_bad_rows=True), seed=0)
    assert [row["line"] for row in raw.skipped["train"]] == [2, 3, 4]
    path.write_text("text,label\n,pos\n ,neg\n")
    with pytest.raises(DataError, match=r"reviews.csv: every row was skipped as bad \(2\)"):
        load_text_data(args(train_file=str(path), skip_bad_rows=True), seed=0)


# ------------------------------------------------------------- missing values, invisible texts, any label set


@pytest.mark.parametrize("missing", ["NaN", "nan", "None", "null", " ", "N/A"])
def test_missing_value_labels_are_missing_labels_not_classes(tmp_path, write_csv, missing):
    write_csv(tmp_path / "t.csv", [("a good film", "pos"), ("an awful film", "neg"), ("a dull film", missing)])
    with pytest.raises(DataError, match=r"t.csv, line 4: missing label in column 'label'"):
        load_text_data(args(train_file=str(tmp_path / "t.csv")), seed=0)
    raw = load_text_data(args(train_file=str(tmp_path / "t.csv"), skip_bad_rows=True), seed=0)
    assert build_label_list(raw) == ["neg", "pos"]


def test_an_unlabelled_test_file_of_missing_values_is_unlabelled(tmp_path, write_csv):
    write_csv(tmp_path / "t.csv", [("a good film", "pos"), ("an awful film", "neg")])
    write_csv(tmp_path / "test.csv", [("a fine film", "NaN"), ("a poor film", "nan")])
    raw = load_text_data(args(train_file=str(tmp_path / "t.csv"), test_file=str(tmp_path / "test.csv")), seed=0)
    encode_labels(raw, build_label_list(raw))
    assert "labels" not in raw.splits["test"].frame


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c \ufeff", "\u2060\u00ad"])
def test_a_text_of_invisible_characters_only_is_an_empty_text(tmp_path, write_csv, text):
    write_csv(tmp_path / "t.csv", [("a good film", "pos"), (text, "neg")])
    with pytest.raises(DataError, match=r"t.csv, line 3: empty text in column 'text' \(only invisible characters: U\+"):
        load_text_data(args(train_file=str(tmp_path / "t.csv")), seed=0)


@pytest.mark.parametrize("value, kind", [(2024, "a number"), (3.5, "a number"), (["a", "b"], "a list")])
def test_a_json_text_that_is_no_string_is_named_as_such(tmp_path, value, kind):
    (tmp_path / "t.jsonl").write_text(json.dumps({"text": "a good film", "label": "pos"}) + "\n"
                                      + json.dumps({"text": value, "label": "neg"}) + "\n")
    with pytest.raises(DataError, match=rf"t.jsonl, line 2: the text in column 'text' is {kind} \(.*\), not a string"):
        load_text_data(args(train_file=str(tmp_path / "t.jsonl")), seed=0)


@pytest.mark.parametrize("labels, validation_split", [
    (["a", "b", "c", "d", "e"] * 2, 0.2),  # 2 rows held out, 5 classes: cannot be stratified
    ([1, "1", "two", 3, "two", 3, 1, "1", 3, "two"], 0.3),  # numbers and names mixed in one column
    (["a", "b"] * 5 + ["c"], 0.2),  # a label seen once
])
def test_the_held_out_split_works_for_any_label_set(tmp_path, labels, validation_split):
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": f"text {i}", "label": label}) + "\n"
                                              for i, label in enumerate(labels)))
    raw = load_text_data(args(train_file=str(tmp_path / "t.jsonl"), validation_split=validation_split), seed=0)
    sizes = raw.sizes()
    assert sizes["train"] + sizes["validation"] == len(labels) and sizes["validation"] == round(validation_split * len(labels))
    assert any("not stratified" in note for note in raw.notes) or len(set(map(str, labels))) == 3


def test_a_held_out_share_of_no_rows_is_explained(tmp_path, write_csv):
    write_csv(tmp_path / "t.csv", [("a good film", "pos"), ("an awful film", "neg"), ("a dull film", "neg")])
    with pytest.raises(DataError, match=r"t.csv: --validation_split 0.1 of its 3 rows holds out none"):
        load_text_data(args(train_file=str(tmp_path / "t.csv"), validation_split=0.1), seed=0)
