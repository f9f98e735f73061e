"""Chinese recipe: character-exact span alignment, CLUENER reading and writing, tiny ERNIE/BERT runs."""

import json

import numpy as np
import pytest

from common.data.errors import DataError
from common.data.tag_schemes import label_list_for, spans_to_tags, tags_to_spans
from characters import encode_char_split, fill_uncovered
from cluener import cluener_label, read_char_bio, read_span_jsonl, span_scores, spans_of
from common.models.scratch import character_tokenizer


@pytest.fixture(scope="module")
def chinese(recipe):
    return recipe("chinese_ernie")

# Mixed Han / Latin / digits, spaces, full-width punctuation and letters, an emoji, entities at both ends.
TEXTS = [
    ("彭小军认为，iPhone12 在2020年卖得好😀", [("name", 0, 2), ("product", 6, 13)]),
    ("他在 New York 开会！ＡＢＣ公司", [("address", 3, 10), ("company", 15, 19)]),
    ("温格的球队终于又踢了一场经典的比赛，2比1战胜曼联", [("name", 0, 1), ("organization", 23, 24)]),
    ("😀 表情后是北京", [("address", 6, 7)]),
]


def logits_from_labels(dataset, n_labels: int) -> np.ndarray:
    """Logits whose argmax is the gold label of every labelled position: alignment round trips."""
    rows = dataset["labels"]
    logits = np.zeros((len(rows), max(map(len, rows)), n_labels))
    for i, row in enumerate(rows):
        for position, label in enumerate(row):
            logits[i, position, max(label, 0)] = 1.0
    return logits


def round_trip(texts, spans, max_length, stride=4):
    tags = [spans_to_tags(s, len(t)) for t, s in zip(texts, spans)]
    labels = label_list_for(tags)
    tokenizer = character_tokenizer(texts)
    features = encode_char_split(texts, tags, tokenizer, {label: i for i, label in enumerate(labels)},
                                 max_length, stride, "test")
    predicted = features.tags(logits_from_labels(features.dataset, len(labels)), labels)
    return features, predicted


def test_tokenizer_keeps_latin_runs_together_and_drops_spaces():
    tokenizer = character_tokenizer([t for t, _ in TEXTS])
    tokens = tokenizer.tokenize("彭小军 iPhone12，2020年😀 ２０")
    assert tokens == ["彭", "小", "军", "i", "##p", "##h", "##o", "##n", "##e", "##1", "##2", "，", "2", "##0", "##2",
                      "##0", "年", "😀", "[UNK]"]  # full-width digits never seen in training: one unknown word


def test_spans_round_trip_through_tokens_exactly():
    texts, spans = [t for t, _ in TEXTS], [s for _, s in TEXTS]
    assert [texts[0][6:14], texts[1][3:11], texts[1][15:20]] == ["iPhone12", "New York", "ＡＢＣ公司"]
    features, predicted = round_trip(texts, spans, max_length=64)
    assert [len(p) for p in predicted] == [len(t) for t in texts]
    assert [tags_to_spans(p) for p in predicted] == spans  # the space inside "New York" stays in the entity
    assert len(features.windows) == len(texts)


def test_text_three_times_the_maximum_comes_back_one_tag_per_character():
    text = "".join(t for t, _ in TEXTS) * 2  # about 110 characters; windows of 16 tokens hold 14
    offset, spans = 0, []
    for t, s in TEXTS * 2:
        spans += [(kind, start + offset, end + offset) for kind, start, end in s]
        offset += len(t)
    features, predicted = round_trip([text], [spans], max_length=16, stride=4)
    assert len(features.windows) >= 7
    assert len(predicted[0]) == len(text)
    assert tags_to_spans(predicted[0]) == spans


def test_characters_no_token_covers_are_inside_an_entity_only_between_its_parts():
    assert fill_uncovered(["B-X", None, "I-X", None, "O", None, "B-Y"]) == ["B-X", "I-X", "I-X", "O", "O", "O", "B-Y"]
    assert fill_uncovered([None, "B-X", None]) == ["O", "B-X", "O"]


def test_entity_boundary_inside_a_word_piece_is_counted(tmp_path, caplog):
    # a pretrained vocabulary with the piece "iphone": an entity "Phone12" starts inside it
    from transformers import BertTokenizerFast

    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "买", "了", "iphone",
                                                   "##1", "##2"]) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast.from_pretrained(str(tmp_path))
    text, tags = "买了iPhone12", spans_to_tags([("product", 3, 9)], 10)
    labels = label_list_for([tags])
    features = encode_char_split([text], [tags], tokenizer, {label: i for i, label in enumerate(labels)}, 32, 4, "t")
    assert "1 tokens hold an entity boundary" in caplog.text
    predicted = features.tags(logits_from_labels(features.dataset, len(labels)), labels)
    assert tags_to_spans(predicted[0]) == [("product", 8, 9)]  # "iphone" was trained as O: only "12" survives


def test_cluener_file_read_and_written_back(tmp_path, write_lines):
    records = [{"text": t, "label": cluener_label(t, spans_to_tags(s, len(t)))} for t, s in TEXTS]
    split = read_span_jsonl(write_lines(tmp_path / "dev.json", records))
    assert [tags_to_spans(t) for t in split.tags] == [s for _, s in TEXTS]
    assert split.lines[1][0] == 2 and split.format == "cluener"
    assert cluener_label(TEXTS[0][0], split.tags[0]) == {"name": {"彭小军": [[0, 2]]}, "product": {"iPhone12": [[6, 13]]}}


@pytest.mark.parametrize("label, message", [
    ({"name": {"彭小军": [[0, 40]]}}, "line 2: name '彭小军' at [0, 40] is outside the text"),
    ({"name": {"彭小": [[0, 2]]}}, "line 2: name at [0, 2] is '彭小军' in the text, but the label says '彭小'"),
    ({"name": {"彭小军": [[0, 2]]}, "person": {"小军": [[1, 2]]}}, "line 2: spans ('name', 0, 2) and ('person', 1, 2) overlap"),
    ({"name": {"彭小军": [0, 2]}}, "line 2: name '彭小军': 0 is not [start, end]"),
])
def test_bad_spans_name_file_and_line(tmp_path, label, message, write_lines):
    path = write_lines(tmp_path / "bad.json", [{"text": "北京", "label": {}}, {"text": TEXTS[0][0], "label": label}])
    with pytest.raises(DataError, match=str(path).replace("\\", "\\\\") + ", " + _escape(message)):
        read_span_jsonl(path)


def _escape(text):
    import re
    return re.escape(text)


def test_invalid_json_line_names_file_and_line(tmp_path, write_lines):
    path = write_lines(tmp_path / "bad.json", [{"text": "北京", "label": {}}, '{"text": "上海", "label": '])
    with pytest.raises(DataError, match=r"bad.json, line 2: invalid JSON"):
        read_span_jsonl(path)


def test_character_per_line_bio(tmp_path):
    path = tmp_path / "msra.txt"
    path.write_text("北\tB-LOC\n京\tI-LOC\n很\tO\n\n 大\tO\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"msra.txt, line 5: ' 大' is not a single character"):
        read_char_bio(path)
    path.write_text("北\tB-LOC\n京\tI-LOC\n \tO\n很\tO\n\n大\tS-LOC\n", encoding="utf-8")
    split = read_char_bio(path)
    assert split.tokens == [["北", "京", " ", "很"], ["大"]] and split.lines[1] == [6]


def test_span_scores_count_exact_span_and_type():
    gold = [{"name": {"彭小军": [[0, 2]]}, "address": {"台湾": [[15, 16]]}}, {}]
    predicted = [{"name": {"彭小": [[0, 1]]}, "address": {"台湾": [[15, 16]]}}, {"game": {"x": [[0, 0]]}}]
    scores = span_scores(gold, predicted)
    assert scores["overall"] == {"precision": 1 / 3, "recall": 1 / 2, "f1": 0.4, "number": 2}
    assert scores["address"]["f1"] == 1.0 and scores["name"]["f1"] == 0.0


@pytest.mark.needs_data("cluener2020")
def test_cluener_dev_spans_to_tags_and_back_reproduce_every_entity(shared_data):
    path = shared_data / "cluener2020" / "dev.json"
    split = read_span_jsonl(path)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    original = {(i, *span) for i, r in enumerate(records) for span in spans_of(r["label"], r["text"], "dev")}
    recovered = {(i, *span) for i, tags in enumerate(split.tags) for span in tags_to_spans(tags)}
    assert len(original) == 3072
    assert recovered == original
    def ordered(label):
        return {kind: {surface: sorted(pairs) for surface, pairs in surfaces.items()} for kind, surfaces in label.items()}

    assert [cluener_label(r["text"], tags) for r, tags in zip(records, split.tags)] == [ordered(r["label"]) for r in records]


def make_ernie(folder, texts, use_task_id=True):
    """A tiny random ERNIE with a character vocabulary, saved like a pretrained checkpoint."""
    from transformers import ErnieConfig, ErnieModel, set_seed

    tokenizer = character_tokenizer(texts, model_max_length=128)
    tokenizer.save_pretrained(str(folder))
    config = ErnieConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128, use_task_id=use_task_id,
                         task_type_vocab_size=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    set_seed(0)
    ErnieModel(config).save_pretrained(str(folder))
    return folder


def first_lines(source, path, n):
    path.write_text("".join(source.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")
    return path


@pytest.mark.needs_data("cluener2020")
@pytest.mark.parametrize("crf", [False, True])
def test_ner_recipe_with_a_pretrained_ernie_folder_writes_cluener_predictions_that_score_the_same(tmp_path, shared_data, repo, chinese, crf):
    cluener = shared_data / "cluener2020"
    train, dev = first_lines(cluener / "train.json", tmp_path / "train.json", 600), first_lines(cluener / "dev.json", tmp_path / "dev.json", 150)
    model = make_ernie(tmp_path / "ernie", [json.loads(line)["text"] for line in train.read_text().splitlines()])
    out = tmp_path / "out"
    chinese.main(["--config", str(repo / "recipes/chinese_ernie/configs/cluener.yaml"), "--model", str(model),
                  "--train_file", str(train), "--validation_file", str(dev), "--output_dir", str(out),
                  "--do_predict", "False", "--num_train_epochs", "3", "--learning_rate", "5e-3",
                  "--max_seq_length", "64", "--per_device_train_batch_size", "16", "--crf", str(crf)])
    results = json.loads((out / "all_results.json").read_text())
    assert results["decoding"].startswith("CRF" if crf else "softmax") and (out / "crf.safetensors").exists() == crf
    if crf:
        assert results["eval_forbidden_transitions"] == 0
    predictions = [json.loads(line) for line in (out / "validation_predictions.json").read_text().splitlines()]
    gold = [json.loads(line) for line in dev.read_text().splitlines()]
    assert [p["text"] for p in predictions] == [g["text"] for g in gold]  # one entry per dev line, in order
    scores = span_scores([g["label"] for g in gold], [p["label"] for p in predictions])
    assert results["eval_f1"] > 0.01  # it found some entities (0.038 measured): the point is that both scorers agree
    assert scores["overall"]["f1"] == pytest.approx(results["eval_f1"], abs=1e-9)
    assert scores["position"]["f1"] == pytest.approx(results["eval_f1_position"], abs=1e-9)
    assert results["sizes"] == {"train": 600, "validation": 150}
    card = (out / "README.md").read_text()
    assert "pipeline_tag: token-classification" in card and "![entity_f1.png](entity_f1.png)" in card
    assert f"| validation | position | {results['eval_precision_position']:.4f} |" in card


@pytest.mark.needs_data("cluener2020")
def test_ner_recipe_cross_validates_over_texts(tmp_path, shared_data, repo, chinese):
    train = first_lines(shared_data / "cluener2020" / "train.json", tmp_path / "train.json", 200)
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    model = make_ernie(tmp_path / "ernie", [row["text"] for row in rows])
    chinese.main(["--config", str(repo / "recipes/chinese_ernie/configs/cluener.yaml"), "--model", str(model),
                  "--train_file", str(train), "--validation_file", "", "--validation_split", "0", "--do_predict", "False",
                  "--cv_folds", "2", "--num_train_epochs", "1", "--max_seq_length", "32", "--stride", "8",  # windows
                  "--output_dir", str(tmp_path / "out")])
    summary = json.loads((tmp_path / "out" / "cv_results.json").read_text())
    assert sorted(t for fold in summary["folds"] for t in fold["held_out_rows"]) == list(range(200))
    entities = sum(len(places) for row in rows for names in row["label"].values() for places in names.values())
    assert sum(fold["held_out_entities"] for fold in summary["folds"]) == entities
    assert {"f1", "f1_position", "precision"} <= set(summary["mean"])


@pytest.mark.needs_data("cluener2020")
def test_ner_recipe_rejects_an_entity_type_unseen_in_training(tmp_path, capsys, write_lines, shared_data, repo, chinese):
    cluener = shared_data / "cluener2020"
    train = first_lines(cluener / "train.json", tmp_path / "train.json", 50)
    dev = write_lines(tmp_path / "dev.json", [{"text": "北京大学", "label": {"school": {"北京大学": [[0, 3]]}}}])
    with pytest.raises(SystemExit) as exit_info:
        chinese.run_main(lambda: chinese.main([
            "--config", str(repo / "recipes/chinese_ernie/configs/cluener_scratch.yaml"), "--train_file", str(train),
            "--validation_file", str(dev), "--output_dir", str(tmp_path / "out")]))
    assert exit_info.value.code == 2
    assert "dev.json, line 1: tag 'B-school' is not in the training tags" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.needs_data("chnsenticorp")
def test_small_roformer_from_scratch_learns_chnsenticorp(tmp_path, shared_data, repo, chinese):
    """Proof that the recipe trains: 2 layers, hidden 128, characters from the training texts, 1 epoch."""
    out = tmp_path / "out"
    chinese.main(["--config", str(repo / "recipes/chinese_ernie/configs/chnsenticorp_scratch.yaml"),
                  "--data_dir", str(shared_data), "--output_dir", str(out), "--num_train_epochs", "1",
                  "--do_predict", "False", "--save_strategy", "no", "--eval_strategy", "no",
                  "--load_best_model_at_end", "False"])
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_accuracy"] >= 0.80, results["eval_accuracy"]  # measured: 0.825 after 1 epoch (AMD EPYC, bf16)
    assert results["sizes"] == {"train": 9600, "validation": 1200, "test": 1200}
    assert results["model"].startswith("roformer from scratch (2 layers, hidden 128")
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(out))
    assert classify("这家酒店很好")[0]["label"] in ("negative", "positive")


def test_overlapping_spans_can_keep_the_longest_and_say_so(tmp_path, caplog, write_lines):
    path = write_lines(tmp_path / "nested.json", [{"text": "读《北京大学史》", "label": {
        "book": {"《北京大学史》": [[1, 7]]}, "organization": {"北京大学": [[2, 5]]}}}])
    with pytest.raises(DataError, match=r"nested.json, line 1: spans \('book', 1, 7\) and \('organization', 2, 5\) overlap"):
        read_span_jsonl(path)
    split = read_span_jsonl(path, overlapping_spans="keep_longest")
    assert tags_to_spans(split.tags[0]) == [("book", 1, 7)]
    assert "1 spans inside longer ones dropped" in caplog.text and "line 1 ('organization', 2, 5)" in caplog.text


@pytest.mark.slow
@pytest.mark.needs_data("chnsenticorp")
@pytest.mark.parametrize("long_text", ["truncate", "windows"])
def test_classification_with_a_bert_from_scratch_writes_predictions_in_order(tmp_path, shared_data, repo, chinese, long_text):
    out = tmp_path / "out"
    chinese.main(["--config", str(repo / "recipes/chinese_ernie/configs/chnsenticorp_scratch.yaml"),
                  "--scratch_model_type", "bert", "--data_dir", str(shared_data), "--output_dir", str(out),
                  "--max_train_samples", "300", "--max_eval_samples", "100", "--max_predict_samples", "50",
                  "--num_train_epochs", "1", "--max_seq_length", "64", "--long_text", long_text, "--explain_examples", "2"])
    results = json.loads((out / "all_results.json").read_text())
    explained = json.loads((out / "explanations" / "explanations.json").read_text())
    assert len(explained) == 2 and all(e["truncated"] == (len(e["text"]) > 62) for e in explained)  # long: the start
    han = [w for e in explained for w in e["words"] if "\u4e00" <= w[0] <= "\u9fff"]
    assert len(han) > 20 and all(len(w) == 1 for w in han)  # a score per character
    test_texts = results["long_texts"]["test"]
    assert test_texts["texts"] == 50 and test_texts["longer_than_max_length"] > 10  # reviews of up to ~1,000 characters
    if long_text == "windows":
        assert test_texts["windows"] > 60 and results["sizes"]["test"] == 50
    assert results["model"].startswith("bert from scratch") and json.loads((out / "config.json").read_text())["model_type"] == "bert"
    predictions = __import__("pandas").read_csv(out / "predictions.csv")
    test_texts = (shared_data / "chnsenticorp" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:51]
    assert predictions["text"].tolist() == [line.split("\t", 1)[1] for line in test_texts]
    assert set(predictions["predicted"]) <= {"negative", "positive"}


def test_a_fold_of_texts_keeps_each_texts_windows_and_its_tags():
    texts, spans = [t for t, _ in TEXTS] * 2, [s for _, s in TEXTS] * 2
    features, predicted = round_trip(texts, spans, max_length=12, stride=4)  # several windows a text
    fold = features.select_sentences([5, 1, 6])
    rows = [k for k, w in enumerate(features.windows) if w.sentence in (1, 5, 6)]
    assert fold.dataset["input_ids"] == [features.dataset["input_ids"][k] for k in rows]
    labels = label_list_for([spans_to_tags(s, len(t)) for t, s in zip(texts, spans)])
    assert fold.tags(logits_from_labels(fold.dataset, len(labels)), labels) == [predicted[5], predicted[1], predicted[6]]


@pytest.mark.parametrize("flags, message", [
    (["--task", "classification", "--crf", "True"], "--crf: for --task ner"),
    (["--task", "classification", "--pack_batches", "True"], "--pack_batches: for --task ner"),
    (["--task", "ner", "--long_text", "windows"], "--long_text and --head_tokens are for classification"),
    (["--task", "ner", "--explain_examples", "4"], "--explain_examples: for classification, not --task ner"),
    (["--task", "ner", "--skip_bad_rows", "True"], "--skip_bad_rows is for classification rows"),
])
def test_options_of_the_other_task_are_refused_when_parsed(tmp_path, recipe, flags, message):
    from common.config.errors import OptionError

    with pytest.raises(OptionError, match=message):  # refused as the command is parsed, before anything is read
        recipe("chinese_ernie").main([*flags, "--train_file", "t.json", "--output_dir", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


@pytest.mark.needs_data("ocnli")
def test_ocnli_pairs_from_scratch_read_both_sentences_and_name_the_rows_left_out(tmp_path, shared_data, repo, chinese):
    out = tmp_path / "out"
    chinese.main(["--config", str(repo / "recipes/chinese_ernie/configs/ocnli_scratch.yaml"), "--data_dir",
                  str(shared_data), "--output_dir", str(out), "--max_train_samples", "200", "--max_eval_samples", "60",
                  "--max_steps", "2", "--max_seq_length", "64", "--disable_tqdm", "True"])
    results = json.loads((out / "all_results.json").read_text())
    assert results["labels"] == ["entailment", "neutral", "contradiction"] and results["sizes"]["validation"] == 60
    notes = " ".join(results["data_notes"])
    assert "left out 49 row(s)" in notes and "left out 50 row(s)" in notes and "lines 66, 252, 335" in notes
    # the character vocabulary comes from both sentences: the second's characters are known, not [UNK]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    first = json.loads((shared_data / "ocnli" / "train.50k.json").read_text(encoding="utf-8").splitlines()[0])
    encoded = tokenizer(first["sentence1"], first["sentence2"])
    assert tokenizer.unk_token_id not in encoded["input_ids"]
    assert encoded["input_ids"].count(tokenizer.sep_token_id) == 2  # a pair: [CLS] a [SEP] b [SEP]
