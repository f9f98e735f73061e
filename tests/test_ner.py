"""Token classification: tag schemes, subword alignment, windows over long sentences, bad input, the recipe."""

import json

import numpy as np
import pytest

from common.config.arguments import ModelArguments, TokenDataArguments
from common.data.errors import DataError
from common.data.tag_schemes import detect_scheme, label_list_for, spans_to_tags, tags_to_spans, to_iob2
from common.data.tagged import load_tagged_data, read_conll, read_token_jsonl
from common.evaluation.metrics import load_metric
from common.models.tokenizer import load_tokenizer
from common.tokens.word_labels import IGNORE, align_labels, encode_tagged_split, plan_windows, word_predictions

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
L2I = {label: i for i, label in enumerate(LABELS)}


@pytest.fixture(scope="module")
def ner_tokenizer(tmp_path_factory, make_bert):
    words = ["john", "smith", "##son", "visit", "##ed", "berlin", "##x", "in", "paris", "and", "met", "ann"]
    folder = make_bert(tmp_path_factory.mktemp("ner-bert"), words=words, max_positions=64)
    return load_tokenizer(ModelArguments(str(folder)), words_given=True)


# ------------------------------------------------------------------------------- tag schemes


def test_iob1_and_bioes_convert_to_iob2():
    assert to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC"], "iob1") == \
        ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    assert to_iob2(["I-PER", "I-ORG"], "iob1") == ["B-PER", "B-ORG"]  # a type change starts an entity
    assert to_iob2(["S-PER", "O", "B-LOC", "I-LOC", "E-LOC", "S-LOC"], "bioes") == \
        ["B-PER", "O", "B-LOC", "I-LOC", "I-LOC", "B-LOC"]
    assert detect_scheme([["B-PER", "I-PER", "O"]]) == "iob2"
    assert detect_scheme([["O", "I-PER"]]) == "iob1"
    assert detect_scheme([["B-PER", "E-PER"]]) == "bioes"
    with pytest.raises(ValueError, match="not valid in IOB2"):
        to_iob2(["S-PER"], "iob2")


def test_spans_and_tags_round_trip():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    spans = tags_to_spans(tags)
    assert spans == [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 5)]
    assert spans_to_tags(spans, 6) == tags
    with pytest.raises(ValueError, match=r"spans \('PER', 0, 1\) and \('LOC', 1, 2\) overlap"):
        spans_to_tags([("PER", 0, 1), ("LOC", 1, 2)], 4)


def test_label_list_puts_i_beside_every_b():
    assert label_list_for([["B-PER", "O"], ["B-LOC"]]) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_seqeval_scores_on_hand_made_predictions():
    scores = load_metric("seqeval_scores").compute(
        references=[["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]],
        predictions=[["B-PER", "I-PER", "O", "B-PER"], ["B-LOC", "B-LOC"]])
    # gold: PER(0-1), LOC(3), LOC(0); predicted: PER(0-1), PER(3), LOC(0), LOC(1) -> 2 right of 4 predicted, 3 gold
    assert scores["overall_precision"] == pytest.approx(2 / 4)
    assert scores["overall_recall"] == pytest.approx(2 / 3)
    assert scores["overall_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert scores["overall_accuracy"] == pytest.approx(4 / 6)
    assert scores["LOC"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "number": 2}
    assert scores["PER"]["number"] == 1 and scores["PER"]["precision"] == 0.5


# ------------------------------------------------------------------------------- alignment


def test_first_subword_alignment_exactly(ner_tokenizer):
    words = ["John", "Smithson", "visited", "Berlinx"]
    encoded = ner_tokenizer(words, is_split_into_words=True)
    assert ner_tokenizer.convert_ids_to_tokens(encoded["input_ids"]) == \
        ["[CLS]", "john", "smith", "##son", "visit", "##ed", "berlin", "##x", "[SEP]"]
    word_ids = encoded.word_ids()
    tags = ["B-PER", "I-PER", "O", "B-LOC"]
    first_only = align_labels(word_ids, tags, L2I)
    assert first_only == [IGNORE, L2I["B-PER"], L2I["I-PER"], IGNORE, L2I["O"], IGNORE, L2I["B-LOC"], IGNORE, IGNORE]
    every_subword = align_labels(word_ids, tags, L2I, label_all_tokens=True)
    # a B- word's continuation subwords get I-, never a second B-
    assert every_subword == [IGNORE, L2I["B-PER"], L2I["I-PER"], L2I["I-PER"], L2I["O"], L2I["O"],
                             L2I["B-LOC"], L2I["I-LOC"], IGNORE]


def test_prediction_per_word_comes_from_its_first_subword(ner_tokenizer):
    features = encode_tagged_split([["John", "Smithson", "visited", "Berlinx"]], None, ner_tokenizer, L2I, 64, 8)
    logits = np.zeros((1, 9, len(LABELS)))
    # first subwords say B-PER, I-PER, O, B-LOC; the continuation subwords say something else
    for position, label in [(1, "B-PER"), (2, "I-PER"), (3, "B-LOC"), (4, "O"), (5, "B-PER"), (6, "B-LOC"),
                            (7, "I-PER")]:
        logits[0, position, L2I[label]] = 5.0
    assert features.tags(logits, LABELS) == [["B-PER", "I-PER", "O", "B-LOC"]]


def test_plan_windows_cut_between_words_with_overlap():
    lengths = [1, 2, 3, 1, 1, 2, 2, 1, 3, 1, 1, 2]  # subwords per word: 20 in all
    windows = plan_windows(0, lengths, budget=8, stride=3)
    ends = np.cumsum([0, *lengths])
    for w in windows:
        assert ends[w.end] - ends[w.start] <= 8
    assert windows[0].start == 0 and windows[-1].end == len(lengths)
    for a, b in zip(windows, windows[1:]):
        assert b.start < a.end and ends[a.end] - ends[b.start] <= 3  # overlap, of at most `stride` subwords
    owned = sorted(i for w in windows for i in range(w.own_start, w.own_end))
    assert owned == list(range(len(lengths)))  # every word predicted exactly once


def test_long_sentence_gets_one_prediction_per_word_from_its_best_window(ner_tokenizer):
    max_length = 16  # 14 subwords per window after [CLS] and [SEP]
    words = (["John", "Smithson", "visited", "Berlinx", "and", "met", "Ann", "in", "Paris"] * 6)[:48]
    tags = [["B-PER", "I-PER", "O", "B-LOC", "O", "O", "B-PER", "O", "B-LOC"][i % 9] for i in range(len(words))]
    features = encode_tagged_split([words], [tags], ner_tokenizer, L2I, max_length, stride=6)
    n_subwords = len(ner_tokenizer(words, is_split_into_words=True, add_special_tokens=False)["input_ids"])
    assert n_subwords >= 3 * max_length and len(features.windows) >= 4
    assert all(len(ids) <= max_length for ids in features.dataset["input_ids"])

    # a "model" that predicts, at each first subword, a label coding the word's absolute position
    logits = np.full((len(features.windows), max_length, len(LABELS)), -1.0)
    for k, (w, ids) in enumerate(zip(features.windows, features.word_ids)):
        for position, word in enumerate(ids):
            if word is not None:
                logits[k, position, (w.start + word) % len(LABELS)] = 1.0
    predicted = word_predictions(features.windows, features.word_ids, logits.argmax(-1), [len(words)])[0]
    assert predicted == [i % len(LABELS) for i in range(len(words))]  # every word, once, in order

    # each word's window is one where it has the most context (subwords on its shorter side)
    counts = np.bincount([w for w in ner_tokenizer(words, is_split_into_words=True).word_ids() if w is not None])
    ends = np.cumsum([0, *counts])

    def context(w, i):
        return min(ends[i] - ends[w.start], ends[w.end] - ends[i + 1])

    for i in range(len(words)):
        owner = next(w for w in features.windows if w.own_start <= i < w.own_end)
        assert context(owner, i) == max(context(w, i) for w in features.windows if w.start <= i < w.end)
    # training labels: each window labels its words' first subwords
    assert sum(label != IGNORE for labels in features.dataset["labels"] for label in labels) == \
        sum(w.end - w.start for w in features.windows)


def test_a_fold_of_sentences_keeps_each_sentences_windows_and_words(ner_tokenizer):
    words = ["john", "smithson", "visited", "berlinx", "and", "met", "ann", "in", "paris"]
    sentences = [words[: 3 + i] for i in range(7)] * 2  # long ones take several windows of 8 tokens
    tags = [["O"] * len(s) for s in sentences]
    features = encode_tagged_split(sentences, tags, ner_tokenizer, L2I, max_length=8, stride=2)
    fold = features.select_sentences([9, 2, 13])
    rows = [k for k, w in enumerate(features.windows) if w.sentence in (2, 9, 13)]
    assert len(rows) > 3 and fold.dataset["input_ids"] == [features.dataset["input_ids"][k] for k in rows]
    # a "model" that codes each word's position: the fold maps its rows back to its own sentences, in its order
    logits = np.full((len(features.windows), 8, len(LABELS)), -1.0)
    for k, (w, ids) in enumerate(zip(features.windows, features.word_ids)):
        for position, word in enumerate(ids):
            if word is not None:
                logits[k, position, (w.sentence + w.start + word) % len(LABELS)] = 1.0
    whole = features.tags(logits, LABELS)
    assert fold.tags(logits[rows], LABELS) == [whole[9], whole[2], whole[13]]


# ------------------------------------------------------------------------------- bad input


def write(path, text):
    path.write_text(text)
    return path


def test_jsonl_tokens_and_tags_of_different_lengths(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"tokens": ["a", "b"], "tags": ["O", "O"]}\n{"tokens": ["c"], "tags": ["O", "B-PER"]}\n')
    with pytest.raises(DataError, match=r"d.jsonl, line 2: 1 tokens but 2 tags"):
        read_token_jsonl(path)


def test_conll_line_with_too_few_columns(tmp_path):
    path = write(tmp_path / "d.txt", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP\n")
    with pytest.raises(DataError, match=r"d.txt, line 4: 2 columns, the tag column 3 needs at least 4"):
        read_conll(path, tag_column=3)


def test_conll_line_missing_its_last_column_is_not_read_as_a_chunk_tag(tmp_path):
    # Read with the last column as the tag, 'Peter NNP B-NP' would be an entity of type NP
    path = write(tmp_path / "d.txt", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP\n")
    with pytest.raises(DataError, match=r"d.txt, line 4: 3 columns, but line 1 has 4: a column is missing or extra"):
        read_conll(path)


def test_invalid_tag(tmp_path):
    path = write(tmp_path / "train.txt", "EU B-ORG\nrejects O\n\nPeter X-PER\n")
    with pytest.raises(DataError, match=r"train.txt, line 4: invalid tag 'X-PER'"):
        load_tagged_data(TokenDataArguments(train_file=str(path)))


def test_empty_file_and_docstart_only(tmp_path):
    with pytest.raises(DataError, match=r"empty.txt: no sentences \(empty file\)"):
        read_conll(write(tmp_path / "empty.txt", ""))
    with pytest.raises(DataError, match=r"docs.txt: no sentences \(only -DOCSTART- lines\)"):
        read_conll(write(tmp_path / "docs.txt", "-DOCSTART- -X- -X- O\n\n-DOCSTART- -X- -X- O\n\n"))


def test_conll_reading_and_scheme_conversion_are_counted(tmp_path, recipe):
    path = write(tmp_path / "iob1.txt", "-DOCSTART- O\n\nPeter I-PER\nBlack I-PER\nin O\nRome I-LOC\n\nOK O\n")
    data = load_tagged_data(TokenDataArguments(train_file=str(path)))
    split = data.splits["train"]
    assert split.tokens == [["Peter", "Black", "in", "Rome"], ["OK"]]
    assert split.tags == [["B-PER", "I-PER", "O", "B-LOC"], ["O"]]
    assert split.lines == [[3, 4, 5, 6], [8]]
    assert any("tags read as IOB1, 2 converted to IOB2" in note for note in data.notes)


# ------------------------------------------------------------------------------- the recipe


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory, ner_tokenizer, recipe, synthetic_conll):
    folder = tmp_path_factory.mktemp("ner-data")
    model = ner_tokenizer.name_or_path
    out = folder / "out"
    recipe("ner").main([
        "--model", model, "--train_file", str(synthetic_conll(folder / "train.txt", 200, 0)),
        "--validation_file", str(synthetic_conll(folder / "dev.txt", 40, 1)),
        "--test_file", str(synthetic_conll(folder / "test.txt", 40, 2)), "--do_predict",
        "--max_seq_length", "8", "--stride", "2",  # windows on every sentence
        "--num_train_epochs", "8", "--learning_rate", "3e-3", "--per_device_train_batch_size", "16",
        "--output_dir", str(out), "--disable_tqdm", "True", "--bf16", "False"])
    return folder, out


def test_ner_recipe_learns_and_scores_entities(ner_run):
    _, out = ner_run
    results = json.loads((out / "all_results.json").read_text())
    assert results["labels"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert results["eval_f1"] >= 0.9 and results["test_f1"] >= 0.9
    assert results["padding"] == "packed" and results["train_sampling_strategy"] == "random"  # the config's default
    for key in ("test_precision", "test_recall", "test_accuracy", "test_f1_PER", "test_support_LOC", "eval_recall_PER"):
        assert key in results, key


def test_ner_predictions_keep_the_input_layout(ner_run):
    folder, out = ner_run
    source = (folder / "test.txt").read_text().splitlines()
    written = (out / "predictions.conll").read_text().splitlines()
    assert len(written) == len(source)
    token_lines = [(s, w) for s, w in zip(source, written) if s and not s.startswith("-DOCSTART-")]
    assert all(w.startswith(s + " ") and len(w.split()) == len(s.split()) + 1 for s, w in token_lines)
    assert [s for s, w in zip(source, written) if not s or s.startswith("-DOCSTART-")] == \
        [w for s, w in zip(source, written) if not s or s.startswith("-DOCSTART-")]
    agree = sum(s.split()[-1] == w.split()[-1] for s, w in token_lines) / len(token_lines)
    assert agree >= 0.9
    entities = [json.loads(line) for line in (out / "entities.jsonl").read_text().splitlines()]
    assert {e["type"] for e in entities} == {"PER", "LOC"}
    assert all(set(e) == {"sentence", "start", "end", "type", "text"} for e in entities)


def test_ner_output_loads_in_token_classification_pipeline(ner_run):
    from transformers import pipeline

    _, out = ner_run
    tagger = pipeline("token-classification", model=str(out), aggregation_strategy="simple")
    found = {(e["entity_group"], e["word"]) for e in tagger("ann visited paris and met john smith")}
    assert ("PER", "ann") in found and ("LOC", "paris") in found and ("PER", "john smith") in found


def test_a_conll_file_not_in_utf8_names_its_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes("Paris NNP B-LOC\n\nZürich NNP B-LOC\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"train.txt, line 3: not utf-8 text \(byte 0xfc\)"):
        read_conll(path)


def test_training_data_without_entities_is_an_error(tmp_path, ner_tokenizer, recipe):
    train = write(tmp_path / "train.txt", "john NN O\nvisited NN O\n\nann NN O\n")
    with pytest.raises(DataError, match=r"train.txt: every token is tagged O; a tagger needs entity tags"):
        recipe("ner").main(["--model", ner_tokenizer.name_or_path, "--train_file", str(train),
                            "--output_dir", str(tmp_path / "out")])


def test_a_trained_ner_folder_evaluates_on_its_own(tmp_path, ner_run, recipe):
    folder, out = ner_run
    trained = json.loads((out / "all_results.json").read_text())
    recipe("ner").main(["--model", str(out), "--do_train", "False", "--validation_file", str(folder / "dev.txt"),
                        "--max_seq_length", "8", "--stride", "2", "--output_dir", str(tmp_path / "eval"),
                        "--bf16", "False", "--disable_tqdm", "True"])
    results = json.loads((tmp_path / "eval" / "all_results.json").read_text())
    assert results["labels"] == trained["labels"] and results["eval_f1"] == pytest.approx(trained["eval_f1"])
    dev = write(tmp_path / "dev.txt", "john NN B-PER\nvisited NN O\nrome NN B-CITY\n")
    with pytest.raises(DataError, match=r"dev.txt, line 3: tag 'B-CITY' is not in the model's tags"):
        recipe("ner").main(["--model", str(out), "--do_train", "False", "--validation_file", str(dev),
                            "--output_dir", str(tmp_path / "eval2")])


def test_entity_metric_names_declared_are_the_ones_reported():
    from common.evaluation.metrics import entity_metrics

    class Features:  # predictions already decoded to tags
        def tags(self, logits, labels, crf=None):
            return [["B-PER", "O", "B-LOC"], ["O"]]

    compute = entity_metrics(Features(), [["B-PER", "O", "B-LOC"], ["B-PER"]], LABELS)
    assert sorted(compute(type("P", (), {"predictions": None})())) == sorted(compute.names)


def test_ner_recipe_with_a_crf_head(tmp_path, ner_tokenizer, recipe, synthetic_conll):
    from safetensors.torch import load_file
    from transformers import pipeline

    model = ner_tokenizer.name_or_path
    train, dev = synthetic_conll(tmp_path / "train.txt", 200, 0), synthetic_conll(tmp_path / "dev.txt", 40, 1)
    out = tmp_path / "out"
    flags = ["--validation_file", str(dev), "--max_seq_length", "8", "--stride", "2", "--crf", "True",
             "--bf16", "False", "--disable_tqdm", "True"]
    recipe("ner").main(["--model", model, "--train_file", str(train), *flags, "--num_train_epochs", "8",
                        "--learning_rate", "3e-3", "--per_device_train_batch_size", "16", "--output_dir", str(out)])
    results = json.loads((out / "all_results.json").read_text())
    assert results["eval_f1"] >= 0.9 and results["eval_forbidden_transitions"] == 0
    assert results["decoding"].startswith("CRF: Viterbi") and "| decoding | CRF: Viterbi" in (out / "README.md").read_text()
    assert results["padding"] == "dynamic"  # the config packs batches; a CRF turns that off
    assert not any(k.startswith("crf.") for k in load_file(str(out / "model.safetensors")))
    transitions = load_file(str(out / "crf.safetensors"))
    assert set(transitions) == {"start", "end", "transitions"} and transitions["transitions"].abs().max() > 0.1
    tagger = pipeline("token-classification", model=str(out), aggregation_strategy="simple")  # emissions alone
    assert ("LOC", "paris") in {(e["entity_group"], e["word"]) for e in tagger("ann visited paris and met john")}
    # the documented function for new text decodes with the transitions too
    from recipes.ner.predict import tag_sentences

    tagged = tag_sentences(str(out), [["ann", "visited", "paris", "and", "met", "john", "smith"]], max_length=8, stride=2)
    assert tagged == [["B-PER", "O", "B-LOC", "O", "O", "B-PER", "I-PER"]]
    # evaluation alone reads the transitions back: the same decoding, the same score
    recipe("ner").main(["--model", str(out), "--do_train", "False", *flags, "--output_dir", str(tmp_path / "eval")])
    again = json.loads((tmp_path / "eval" / "all_results.json").read_text())
    assert again["eval_f1"] == pytest.approx(results["eval_f1"])


@pytest.mark.parametrize("crf", [False, True])
def test_ner_recipe_cross_validates_over_sentences(tmp_path, ner_tokenizer, recipe, crf, synthetic_conll):
    train = synthetic_conll(tmp_path / "train.txt", 90, 0)
    gold = read_conll(train).tags
    entities = sum(tag.startswith("B-") for tags in gold for tag in tags)

    def run(out):
        recipe("ner").main(["--model", ner_tokenizer.name_or_path, "--train_file", str(train), "--cv_folds", "3",
                            "--max_seq_length", "8", "--stride", "2",  # several windows a sentence, kept in one fold
                            "--num_train_epochs", "8", "--learning_rate", "3e-3", "--per_device_train_batch_size", "16",
                            "--crf", str(crf), "--output_dir", str(out), "--disable_tqdm", "True", "--bf16", "False"])
        return json.loads((out / "cv_results.json").read_text())

    first = run(tmp_path / "a")
    folds = first["folds"]
    assert sorted(s for fold in folds for s in fold["held_out_rows"]) == list(range(len(gold)))  # each sentence once
    assert [fold["train_rows"] for fold in folds] == [60, 60, 60] and not first["stratified"]
    assert sum(fold["held_out_entities"] for fold in folds) == entities
    assert all(fold["f1"] >= 0.9 for fold in folds)  # every fold learns the names and places
    assert first["mean"]["f1"] == pytest.approx(np.mean([fold["f1"] for fold in folds]))
    assert first["std_dev"]["f1"] == pytest.approx(np.std([fold["f1"] for fold in folds], ddof=1))
    assert all(fold["forbidden_transitions"] == 0 for fold in folds) if crf else True
    assert "| mean +- std |" in (tmp_path / "a" / "README.md").read_text()
    if not crf:
        second = run(tmp_path / "b")
        assert [(f["held_out_rows"], f["f1"], f["loss"]) for f in second["folds"]] == \
            [(f["held_out_rows"], f["f1"], f["loss"]) for f in folds]


def test_a_file_whose_last_column_is_the_chunk_column_names_it(tmp_path):
    # CoNLL-2003 without its entity column: 'B-NP' would be read as an entity of type NP, and the error would
    # only come later, blaming the validation file's entity tags
    train = write(tmp_path / "train.txt", "EU NNP B-NP\nrejects VBZ B-VP\nGerman JJ B-NP\ncall NN I-NP\n\n")
    dev = write(tmp_path / "dev.txt", "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n")
    with pytest.raises(DataError, match=r"train.txt: the tag column \(column -1 of 3\) holds chunk tags \(NP, VP\), "
                                        r"not entity types: is the entity column missing\?"):
        load_tagged_data(TokenDataArguments(train_file=str(train), validation_file=str(dev)))
