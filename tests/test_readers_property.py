"""Property-based tests (hypothesis) of every file reader: the recipes' data files, the pretraining corpus (text,
gzip and tables) and what the export reads (a trained folder, an exported one).

1. Round trip: random rows written as the format's own writer writes them read back as exactly
   those rows, each numbered by the line it starts on.
2. Mutations: a valid file with bytes flipped, lines cut, quotes and separators inserted or its
   encoding changed either loads (reader and checks, as a recipe runs them) or raises DataError;
   never another exception. When it loads, every line is accounted for: each non-blank line is a
   row of its own, or inside a row that spans lines, and such rows are announced in the log.
3. Model folders with a file damaged load or raise OptionError (one line); never another exception.
"""

import csv
import gzip
import io
import json
import logging
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.config.arguments import TextDataArguments, TokenDataArguments
from common.config.errors import OptionError
from common.data.errors import DataError
from common.data.tables import read_table
from common.data.tagged import load_tagged_data, read_conll, read_token_jsonl
from common.data.text import load_text_data
from cluener import read_char_bio, read_span_jsonl
from corpus import read_documents

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Texts as users have them: punctuation, quotes, separators, accents, CJK, emoji; some with line breaks.
# Pieces of ordinary text and, often, the characters that break readers: quotes, separators, line
# ends (\u2028 and \x85 end a line for str.splitlines() but not in a file: a reader must not split there).
SPECIAL = list(',;"\'\t\n\r \u2028\x85')
CHARACTERS = st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"])
TEXT = st.lists(st.sampled_from(SPECIAL) | st.text(CHARACTERS, min_size=1, max_size=4), min_size=1,
                max_size=10).map("".join).filter(lambda t: t.strip())
ONE_LINE_TEXT = TEXT.filter(lambda t: not any(c in t for c in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"))
LABEL = st.sampled_from(["pos", "neg", "neutral", "1", "2"])
TOKEN = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Zs", "Zl", "Zp"]), min_size=1,
                max_size=8).filter(lambda t: len(t.split()) == 1 and t == t.strip() and t != "-DOCSTART-")
TAG = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])


def write_csv_text(rows, delimiter=","):
    out = io.StringIO()
    # csv's default line end, \r\n: with "\n" it would leave a bare \r in a field unquoted
    writer = csv.writer(out, delimiter=delimiter,
                        quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL, escapechar=None)
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    return out.getvalue()


def start_lines(records: list[str]) -> list[int]:
    """The line each serialised record starts on, records written one after another after a header line
    (lines end at \n, \r\n or a lone \r, as a file read with newline="" splits them)."""
    line, starts = 2, []
    for record in records:
        starts.append(line)
        line += len(io.StringIO(record, newline="").readlines())
    return starts


# ------------------------------------------------------------------------------------ round trips


@SETTINGS
@given(rows=st.lists(st.tuples(TEXT, LABEL), min_size=1, max_size=12))
def test_csv_round_trip(tmp_path, rows):
    path = tmp_path / "d.csv"
    path.write_text(write_csv_text(rows), encoding="utf-8", newline="")
    split = read_table(path)
    assert list(zip(split.frame["text"], split.frame["label"])) == rows
    records = [write_csv_text([row]).split("\r\n", 1)[1] for row in rows]
    assert split.frame["_line"].tolist() == start_lines(records)


@SETTINGS
@given(rows=st.lists(st.tuples(ONE_LINE_TEXT, LABEL), min_size=1, max_size=12))
def test_tsv_round_trip(tmp_path, rows):
    path = tmp_path / "d.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows), encoding="utf-8", newline="")
    split = read_table(path)
    assert list(zip(split.frame["text"], split.frame["label"])) == rows
    assert split.frame["_line"].tolist() == list(range(2, len(rows) + 2))


@SETTINGS
@given(rows=st.lists(st.tuples(TEXT, LABEL), min_size=1, max_size=12), ascii_only=st.booleans(),
       as_array=st.booleans())
def test_json_round_trip(tmp_path, rows, ascii_only, as_array):
    records = [{"text": t, "label": label} for t, label in rows]
    path = tmp_path / ("d.json" if as_array else "d.jsonl")
    if as_array:
        path.write_text(json.dumps(records, ensure_ascii=ascii_only), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in records), encoding="utf-8")
    split = read_table(path)
    assert list(zip(split.frame["text"], split.frame["label"])) == rows
    assert split.frame["_line"].tolist() == list(range(1, len(rows) + 1))


SENTENCES = st.lists(st.lists(st.tuples(TOKEN, TAG), min_size=1, max_size=6), min_size=1, max_size=6)


@SETTINGS
@given(sentences=SENTENCES, docstart=st.booleans())
def test_conll_round_trip(tmp_path, sentences, docstart):
    lines = ["-DOCSTART- -X- O", ""] if docstart else []
    for sentence in sentences:
        lines += [f"{token} NN {tag}" for token, tag in sentence] + [""]
    path = tmp_path / "d.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    split = read_conll(path)
    assert split.tokens == [[t for t, _ in s] for s in sentences]
    assert split.tags == [[tag for _, tag in s] for s in sentences]
    assert all(lines[n - 1].split()[0] == token for sent, numbers in zip(split.tokens, split.lines)
               for token, n in zip(sent, numbers))


@SETTINGS
@given(sentences=SENTENCES)
def test_token_jsonl_round_trip(tmp_path, sentences):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"tokens": [t for t, _ in s], "tags": [g for _, g in s]}, ensure_ascii=False)
                            + "\n" for s in sentences), encoding="utf-8")
    split = read_token_jsonl(path)
    assert split.tokens == [[t for t, _ in s] for s in sentences] and split.tags == [[g for _, g in s] for s in sentences]


CHINESE = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF), min_size=1, max_size=10)


@SETTINGS
@given(texts=st.lists(CHINESE, min_size=1, max_size=6))
def test_span_jsonl_and_char_bio_round_trip(tmp_path, texts):
    records = [{"id": i, "text": t, "label": {"name": {t[:1]: [[0, 0]]}}} for i, t in enumerate(texts)]
    spans = tmp_path / "d.json"
    spans.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    split = read_span_jsonl(spans)
    assert ["".join(chars) for chars in split.tokens] == texts
    assert all(tags[0] == "B-name" and set(tags[1:]) <= {"O"} for tags in split.tags)
    bio = tmp_path / "d.bio"
    bio.write_text("".join("".join(f"{c}\t{tag}\n" for c, tag in zip(t, ["B-name"] + ["O"] * len(t))) + "\n"
                           for t in texts), encoding="utf-8")
    assert read_char_bio(bio).tokens == split.tokens and read_char_bio(bio).tags == split.tags


# -------------------------------------------------------------------------------------- mutations


MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.integers(0, 0)),
    st.tuples(st.just("drop_line"), st.integers(0, 10_000), st.integers(0, 0)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.sampled_from(list(b'",\t\n\r {}[]:O-'))),
    st.tuples(st.just("encode"), st.integers(0, 0), st.sampled_from(["latin-1", "gbk", "utf-16", "cp1252"])),
)


def mutate(data: bytes, mutations) -> bytes:
    for kind, position, value in mutations:
        at = position % (len(data) + 1)
        if kind == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([value]) + data[at + 1:]
        elif kind == "cut":
            data = data[:at]
        elif kind == "drop_line":
            lines = data.split(b"\n")
            del lines[position % len(lines)]
            data = b"\n".join(lines)
        elif kind == "insert":
            data = data[:at] + bytes([value]) + data[at:]
        elif kind == "encode":
            data = data.decode("utf-8", errors="replace").encode(value, errors="replace")
    return data


def loads_or_data_error(load):
    """Run `load`; a DataError is a fine answer, any other exception fails the test."""
    try:
        return load()
    except DataError as error:
        assert str(error).strip()
        return None


def non_blank_lines(path) -> list[int]:
    text = path.read_bytes().decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    return [n for n, line in enumerate(io.StringIO(text, newline=None), start=1) if line.strip()]


@SETTINGS
@given(rows=st.lists(st.tuples(TEXT, LABEL), min_size=2, max_size=8), mutations=st.lists(MUTATION, max_size=3),
       suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".json"]))
def test_mutated_text_files_load_or_raise_data_errors(tmp_path, caplog, rows, mutations, suffix):
    rows = rows + [("a different text", "neg" if rows[0][1] != "neg" else "pos")]  # two classes at least
    if suffix == ".csv":
        content = write_csv_text(rows)
    elif suffix == ".tsv":
        content = "text\tlabel\n" + "".join(f"{' '.join(t.split())}\t{label}\n" for t, label in rows)
    elif suffix == ".jsonl":
        content = "".join(json.dumps({"text": t, "label": label}, ensure_ascii=False) + "\n" for t, label in rows)
    else:
        content = json.dumps([{"text": t, "label": label} for t, label in rows], ensure_ascii=False, indent=1)
    path = tmp_path / f"d{suffix}"
    path.write_bytes(mutate(content.encode("utf-8"), mutations))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        raw = loads_or_data_error(lambda: load_text_data(TextDataArguments(train_file=str(path), validation_split=0),
                                                         seed=0))
    if raw is None:
        return
    starts = raw.splits["train"].frame["_line"].tolist()
    assert starts == sorted(set(starts))
    if suffix in (".csv", ".tsv", ".jsonl"):
        lines = non_blank_lines(path)[1 if suffix != ".jsonl" else 0:]  # no header in JSON lines
        inside = [n for n in lines if n not in starts]  # lines that are not a row of their own
        assert set(starts) <= set(lines)
        if inside:  # only a CSV row with quoted line breaks holds more than one line, and the log says so
            assert suffix == ".csv" and "hold line breaks inside quotes" in caplog.text, inside


@SETTINGS
@given(sentences=SENTENCES, mutations=st.lists(MUTATION, max_size=3), as_jsonl=st.booleans())
def test_mutated_tagged_files_load_or_raise_data_errors(tmp_path, sentences, mutations, as_jsonl):
    if as_jsonl:
        path = tmp_path / "d.jsonl"
        content = "".join(json.dumps({"tokens": [t for t, _ in s], "tags": [g for _, g in s]}, ensure_ascii=False)
                          + "\n" for s in sentences)
    else:
        path = tmp_path / "d.txt"
        content = "".join("".join(f"{t} NN {g}\n" for t, g in s) + "\n" for s in sentences)
    path.write_bytes(mutate(content.encode("utf-8"), mutations))
    data = loads_or_data_error(lambda: load_tagged_data(TokenDataArguments(train_file=str(path))))
    if data is None:
        return
    split = data.splits["train"]
    lines = non_blank_lines(path)
    if as_jsonl:  # one sentence per non-blank line
        assert len(split.tokens) == len(lines)
    else:  # one token per non-blank line that is not -DOCSTART-
        text = path.read_bytes().decode("utf-8").lstrip("\ufeff").splitlines()
        kept = [n for n in lines if text[n - 1].split()[0] != "-DOCSTART-"]
        assert [n for numbers in split.lines for n in numbers] == kept


@SETTINGS
@given(texts=st.lists(CHINESE, min_size=1, max_size=5), mutations=st.lists(MUTATION, max_size=3),
       as_spans=st.booleans())
def test_mutated_chinese_files_load_or_raise_data_errors(tmp_path, texts, mutations, as_spans):
    if as_spans:
        path = tmp_path / "d.json"
        content = "".join(json.dumps({"id": i, "text": t, "label": {"name": {t[:1]: [[0, 0]]}}}, ensure_ascii=False)
                          + "\n" for i, t in enumerate(texts))
        reader = read_span_jsonl
    else:
        path = tmp_path / "d.bio"
        content = "".join("".join(f"{c}\t{'B-name' if i == 0 else 'O'}\n" for i, c in enumerate(t)) + "\n"
                          for t in texts)
        reader = read_char_bio
    path.write_bytes(mutate(content.encode("utf-8"), mutations))
    split = loads_or_data_error(lambda: reader(path))
    if split is None:
        return
    lines = non_blank_lines(path)
    if as_spans:
        assert len(split.tokens) == len(lines)
    else:
        assert [n for numbers in split.lines for n in numbers] == lines


@SETTINGS
@given(texts=st.lists(TEXT, min_size=1, max_size=8), mutations=st.lists(MUTATION, max_size=3),
       suffix=st.sampled_from([".txt", ".txt.gz", ".jsonl", ".csv"]))
def test_mutated_pretraining_corpora_read_or_raise_data_errors(tmp_path, texts, mutations, suffix):
    if suffix in (".txt", ".txt.gz"):
        content = "\n".join(" ".join(t.split()) for t in texts).encode("utf-8")  # one document per line
    elif suffix == ".jsonl":
        content = "".join(json.dumps({"text": t, "label": 1}, ensure_ascii=False) + "\n" for t in texts).encode()
    else:
        content = write_csv_text([(t, "1") for t in texts]).encode("utf-8")
    path = tmp_path / f"corpus{suffix}"
    # a .gz file damaged on disk: its compressed bytes are what is flipped or cut
    path.write_bytes(mutate(gzip.compress(content), mutations) if suffix == ".txt.gz" else mutate(content, mutations))
    documents = loads_or_data_error(lambda: list(read_documents(path, "utf-8", "text")))
    if documents is None or suffix in (".jsonl", ".csv"):
        return
    raw = gzip.decompress(path.read_bytes()) if suffix == ".txt.gz" else path.read_bytes()
    lines = [line.decode("utf-8").strip() for line in raw.split(b"\n")]
    assert documents == [line for line in lines if line]  # every non-blank line, whole, in order


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory, tiny_bert):
    """A trained classifier's folder and its ONNX export (what recipes/export reads)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from common.models.onnx_export import export_onnx, load_classifier

    classifier = tmp_path_factory.mktemp("classifier")
    torch.manual_seed(0)
    config = BertConfig.from_pretrained(tiny_bert, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    BertForSequenceClassification(config).save_pretrained(classifier)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(classifier)
    exported = tmp_path_factory.mktemp("exported")
    export_onnx(*load_classifier(str(classifier)), exported)
    return {"classifier": classifier, "export": exported}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["classifier", "export"]), target=st.sampled_from(["config.json", "tokenizer.json",
                                                                               "tokenizer_config.json", "weights"]),
       mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_damaged_model_folders_load_or_raise_option_errors(tmp_path_factory, model_folders, kind, target, mutations):
    from common.models.onnx_export import OnnxClassifier, load_classifier

    folder = tmp_path_factory.mktemp("damaged") / kind
    shutil.copytree(model_folders[kind], folder)
    name = {"classifier": "model.safetensors", "export": "model.onnx"}[kind] if target == "weights" else target
    (folder / name).write_bytes(mutate((folder / name).read_bytes(), mutations))
    try:
        if kind == "classifier":
            load_classifier(str(folder))
        else:
            OnnxClassifier(folder).predict(["a fine film", "awful"])
    except OptionError as error:
        assert str(error).strip() and "\n" not in str(error).strip()


def test_the_mutations_do_reach_both_outcomes(tmp_path):
    """The properties above are not vacuous: some mutated files load and some raise DataError."""
    content = write_csv_text([("a fine film", "pos"), ("a dull film", "neg")]).encode("utf-8")
    path = tmp_path / "d.csv"
    path.write_bytes(mutate(content, [("insert", 11, ord('"'))]))  # a quote opening line 2, never closed
    with pytest.raises(DataError):
        load_text_data(TextDataArguments(train_file=str(path), validation_split=0), seed=0)
    path.write_bytes(mutate(content, [("drop_line", 0, 0)]))  # the header
    with pytest.raises(DataError, match="no column 'text'"):
        load_text_data(TextDataArguments(train_file=str(path), validation_split=0), seed=0)
    path.write_bytes(mutate(content, [("insert", 14, ord(" "))]))
    assert len(load_text_data(TextDataArguments(train_file=str(path), validation_split=0), seed=0)
               .splits["train"].frame) == 2


def test_damage_reaches_both_outcomes_for_corpora_and_model_folders(tmp_path, model_folders):
    """The corpus and model-folder properties are not vacuous either: each kind of damage below is refused in one
    line (each was once a traceback), and an undamaged file reads."""
    from common.models.onnx_export import OnnxClassifier, load_classifier

    path = tmp_path / "corpus.txt.gz"
    path.write_bytes(gzip.compress("很好\n".encode() * 500)[:40] + b"\x00garbage" * 50)
    with pytest.raises(DataError, match="corpus.txt.gz: cannot be read as gzip-compressed text"):
        list(read_documents(path, "utf-8"))
    path.write_bytes(gzip.compress("很好\n\n  \n不错\n".encode()))
    assert list(read_documents(path, "utf-8")) == ["很好", "不错"]

    def damaged(kind, name, old, new):
        folder = tmp_path / f"{kind}-{name}"
        shutil.copytree(model_folders[kind], folder)
        text = (folder / name).read_text()
        assert old in text
        (folder / name).write_text(text.replace(old, new, 1))
        return folder

    with pytest.raises(OptionError, match="cannot load it"):  # weights of another shape than its config says
        load_classifier(str(damaged("classifier", "config.json", '"hidden_size": 32', '"hidden_size": 48')))
    with pytest.raises(OptionError, match="cannot load it"):  # a tokenizer.json that is not JSON
        load_classifier(str(damaged("classifier", "tokenizer.json", '"version"', '"version" "')))
    with pytest.raises(OptionError, match="names no label for id 0"):
        OnnxClassifier(damaged("export", "config.json", '"0": "neg"', '"7": "neg"'))
    with pytest.raises(OptionError, match="the graph takes token_type_ids, which its tokenizer does not make"):
        OnnxClassifier(damaged("export", "tokenizer_config.json", '"tokenizer_class"',
                               '"model_input_names": ["input_ids", "attention_mask"], "tokenizer_class"'))
    assert OnnxClassifier(model_folders["export"]).predict(["a fine film"])[0] in ("neg", "pos")
