"""The pretraining recipe: masking units and rates, corpus reading and blocks, a tiny run that learns, and its
output folder fine-tuned by the other recipes."""

import gzip
import itertools
import json
import math
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from common.models.scratch import character_tokenizer
from masking import (UnitMaskingCollator, knowledge_spans, starts_from_spans, starts_from_word_ids,
                                         word_spans)

@pytest.fixture(scope="module")
def pretraining(recipe):
    return recipe("pretraining")


@pytest.fixture(scope="module")
def tokenizer(chinese_sentences):
    return character_tokenizer(chinese_sentences(200) + ["unbelievable things happen"], model_max_length=512)


def block_rows(tokenizer, texts, spans_of=None):
    """One block per text: [CLS] text [SEP], with word_starts from the spans (or every token a unit)."""
    rows = []
    for text in texts:
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        starts = starts_from_spans(encoding["offset_mapping"], spans_of(text), len(text)) if spans_of else \
            [1] * len(encoding["input_ids"])
        ids = [tokenizer.cls_token_id, *encoding["input_ids"], tokenizer.sep_token_id]
        rows.append({"input_ids": ids, "special_tokens_mask": [1, *[0] * (len(ids) - 2), 1],
                     "word_starts": [1, *starts, 1]})
    return rows


def units_of(row):
    """The maskable positions of a row, grouped into its units."""
    units, current = [], []
    for k, (special, start) in enumerate(zip(row["special_tokens_mask"], row["word_starts"])):
        if special:
            continue
        if start and current:
            units.append(current)
            current = []
        current.append(k)
    return units + [current]


def test_token_masking_rate_and_replacements_follow_the_settings(tokenizer, chinese_sentences):
    rows = block_rows(tokenizer, chinese_sentences(400, seed=1))
    collator = UnitMaskingCollator(tokenizer, mlm_probability=0.15, seed=0)
    batch = collator(rows)
    labels, inputs = batch["labels"].numpy(), batch["input_ids"].numpy()
    masked = labels != -100
    for row, row_masked in zip(rows, masked):  # each block: round(15% of its tokens), special tokens never
        assert row_masked.sum() == max(1, round(0.15 * (len(row["input_ids"]) - 2)))
        assert not row_masked[0] and not row_masked[len(row["input_ids"]) - 1]
    as_mask = (inputs == tokenizer.mask_token_id) & masked
    unchanged = (inputs == labels) & masked
    share_mask, share_unchanged = as_mask.sum() / masked.sum(), unchanged.sum() / masked.sum()
    assert 0.76 < share_mask < 0.84 and 0.07 < share_unchanged < 0.15  # 80% [MASK]; 10% kept (+ random hits)
    assert (inputs[~masked] == np.array([r["input_ids"] + [0] * (inputs.shape[1] - len(r["input_ids"]))
                                         for r in rows])[~masked]).all()
    again = UnitMaskingCollator(tokenizer, mlm_probability=0.15, seed=0)(rows)
    assert (again["labels"].numpy() == labels).all()  # same seed, same masks


@pytest.mark.parametrize("segment", [word_spans, lambda text: knowledge_spans(text)[0]])
def test_whole_word_and_knowledge_masking_never_mask_part_of_a_unit(tokenizer, segment, chinese_sentences):
    rows = block_rows(tokenizer, chinese_sentences(300, seed=2), segment)
    batch = UnitMaskingCollator(tokenizer, mlm_probability=0.15, seed=3, needs_units=True)(rows)
    masked = batch["labels"].numpy() != -100
    multi = 0
    for row, row_masked in zip(rows, masked):
        for unit in units_of(row):
            assert row_masked[unit].all() or not row_masked[unit].any(), (row, unit)
            multi += len(unit) > 1 and row_masked[unit].all()
        assert row_masked.sum() <= round(0.15 * (len(row["input_ids"]) - 2))  # never above the budget
    tokens = sum(len(row["input_ids"]) - 2 for row in rows)
    assert 0.13 < masked.sum() / tokens < 0.17  # units that do not fit are passed over for smaller ones
    assert multi > 100  # whole multi-character units were masked


def test_knowledge_units_are_entities_and_noun_phrases():
    text = "北京大学的张伟昨天在上海参加了华为公司的新品发布会"
    spans, entity_chars, phrase_chars = knowledge_spans(text)
    units = [text[a:b] for a, b in spans]
    assert "".join(units) == text
    for unit in ("北京大学", "张伟", "上海", "华为公司", "新品发布会"):
        assert unit in units, units
    assert entity_chars == len("北京大学张伟上海华为公司") and phrase_chars == len("新品发布会")
    assert [text[a:b] for a, b in word_spans(text)][:3] == ["北京大学", "的", "张伟"]


def test_english_whole_words_join_word_pieces(tokenizer):
    encoding = tokenizer("unbelievable things", add_special_tokens=False)
    pieces = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    assert pieces[:3] == ["u", "##n", "##b"]  # a character vocabulary: every letter its own piece
    starts = starts_from_word_ids(encoding.word_ids())
    assert starts == [1] + [0] * (len("unbelievable") - 1) + [1] + [0] * (len("things") - 1)


@pytest.mark.parametrize("masking", ["token", "knowledge"])
def test_streaming_and_in_memory_reading_give_the_same_blocks(tmp_path, tokenizer, masking, write_corpus):
    import datasets

    from pretraining_arguments import CorpusArguments
    from corpus import block_datasets, corpus_files, held_out_every

    files = write_corpus(tmp_path / "corpus")
    result = {}
    for streaming in (False, True):
        args = CorpusArguments(train_file=[str(f) for f in files], max_seq_length=32, streaming=streaming,
                               validation_split_percentage=10)
        found = corpus_files(args)
        result[streaming] = block_datasets(found, held_out_every(args, found), args, tokenizer, masking,
                                           "jieba" if masking != "token" else None)
    assert isinstance(result[True]["train"], datasets.IterableDataset)
    in_memory = list(result[False]["train"])
    streamed = list(itertools.islice(result[True]["train"], 2 * len(in_memory) + 1))  # a stream goes on, pass by pass
    assert [row.pop("pass") for row in streamed] == [0] * len(in_memory) + [1] * len(in_memory) + [2]
    assert in_memory == streamed[:len(in_memory)] == streamed[len(in_memory):-1] and len(in_memory) > 50
    # nothing dropped: every training document's tokens are in the blocks, each file's last block shorter
    documents = [t for f in files for k, t in enumerate(
        (line.strip() for line in (gzip.open(f, "rt") if f.suffix == ".gz" else open(f)) if line.strip())) if k % 10 != 9]
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in documents)  # + its [SEP]
    assert sum(len(b["input_ids"]) - 2 for b in in_memory) == tokens
    assert sum(len(b["input_ids"]) < 32 for b in in_memory) == 2
    assert len(result[False]["validation"]) > 5


def test_a_task_table_pretrains_on_its_text_column_as_a_text_file_would(tmp_path, tokenizer, caplog,
                                                                          chinese_sentences):
    from pretraining_arguments import CorpusArguments
    from corpus import block_datasets, corpus_files, held_out_every

    texts = chinese_sentences(300, seed=3)
    plain = tmp_path / "train.txt"
    plain.write_text("\n".join(texts) + "\n", encoding="utf-8")
    table = tmp_path / "train.tsv"  # labels beside the text, two rows without text (counted, not blocks)
    rows = [f"{k % 2}\t{text}" for k, text in enumerate(texts)]
    table.write_text("label\ttext_a\n" + "\n".join(rows[:7] + ["1\t ", "0\t"] + rows[7:]) + "\n", encoding="utf-8")
    records = tmp_path / "train.jsonl"
    records.write_text("".join(json.dumps({"text": t, "label": "x"}, ensure_ascii=False) + "\n" for t in texts),
                       encoding="utf-8")
    blocks = {}
    for path, column in ((plain, None), (table, "text_a"), (records, "text")):
        args = CorpusArguments(train_file=[str(path)], text_column=column, max_seq_length=32,
                               validation_split_percentage=10)
        found = corpus_files(args)
        with caplog.at_level("INFO"):
            splits = block_datasets(found, held_out_every(args, found), args, tokenizer, "whole_word", "jieba")
        blocks[path.suffix] = (list(splits["train"]), list(splits["validation"]))
    assert blocks[".tsv"] == blocks[".txt"] == blocks[".jsonl"] and len(blocks[".txt"][0]) > 20
    assert f"2 rows with no text in 'text_a' skipped (first: {table}, line 9)" in caplog.text


def test_a_tiny_pretraining_run_lowers_the_held_out_loss_and_its_folder_fine_tunes(
        tmp_path, pretraining, recipe, write_csv, write_lines, chinese_sentences, write_corpus, tiny_flags):
    files = write_corpus(tmp_path / "corpus")
    out = tmp_path / "mlm"
    pretraining.main(tiny_flags(files, out, "--max_steps", "300", "--masking", "whole_word", "--eval_steps", "100",
                                "--scratch_hidden_size", "64", "--scratch_layers", "2"))
    results = json.loads((out / "all_results.json").read_text())
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [e["eval_loss"] for e in history if "eval_loss" in e]
    # below an untrained model's ln(vocabulary), and below the characters' unigram entropy, which no model
    # reaches without reading the context (measured: 3.24 against 3.54)
    counts = Counter(char for text in chinese_sentences(1200) for char in text)
    entropy = -sum(n / counts.total() * math.log(n / counts.total()) for n in counts.values())
    assert len(losses) == 3 and losses[-1] < math.log(results["vocabulary_size"]) - 0.5 and losses[-1] < entropy - 0.15
    assert results["eval_perplexity"] == pytest.approx(math.exp(results["eval_loss"]))
    assert results["masking"] == "whole_word" and results["segmenter"] == "jieba"
    assert results["sizes"]["validation"] > 0 and results["train_tokens_per_second"] > 0
    assert {"training_curves.png", "README.md", "config.json", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert "pipeline_tag: fill-mask" in (out / "README.md").read_text()
    from transformers import pipeline

    fill = pipeline("fill-mask", model=str(out))
    # 300 steps of a tiny model: the right character among its first 3 of about 60 (measured: 2nd, at 0.064)
    assert "好" in [guess["token_str"] for guess in fill("张伟昨天在北京参加了新品发布会，觉得很[MASK]。")[:3]]

    # the folder is an ordinary model folder: the Chinese recipe fine-tunes it for classification and NER
    chinese = recipe("chinese_ernie")
    rows = [(t, "positive" if "喜欢" in t else "negative") for t in chinese_sentences(200, seed=5)]
    train, dev = write_csv(tmp_path / "train.csv", rows[:160]), write_csv(tmp_path / "dev.csv", rows[160:])
    chinese.main(["--model", str(out), "--train_file", str(train), "--validation_file", str(dev),
                  "--output_dir", str(tmp_path / "cls"), "--num_train_epochs", "1", "--bf16", "False",
                  "--max_seq_length", "64"])
    assert json.loads((tmp_path / "cls" / "all_results.json").read_text())["sizes"]["train"] == 160
    spans = [{"text": t, "label": {"name": {t[:2]: [[0, 1]]}}} for t in chinese_sentences(60, seed=6)]
    train_ner, dev_ner = write_lines(tmp_path / "train.json", spans[:40]), write_lines(tmp_path / "dev.json", spans[40:])
    chinese.main(["--task", "ner", "--model", str(out), "--train_file", str(train_ner), "--validation_file",
                  str(dev_ner), "--output_dir", str(tmp_path / "ner"), "--num_train_epochs", "1", "--bf16", "False",
                  "--max_seq_length", "64", "--metric_for_best_model", "f1", "--do_predict", "False"])
    assert json.loads((tmp_path / "ner" / "all_results.json").read_text())["sizes"]["train"] == 40


@pytest.mark.parametrize("case, message", [
    ("empty", "empty.txt: no text (the file is empty or has blank lines only)"),
    ("latin1", "latin1.txt: line 3 is not utf-8 text"),
    ("block", "--max_seq_length 1024 is above the model's position limit (512 tokens)"),
    ("thai", "is mostly Thai text, written without spaces between words, and there is no word segmenter"),
    ("knowledge_en", "--masking knowledge finds entities and phrases in Chinese text"),
    ("vocabulary", "too few to train a language model"),
    ("missing", "nothing.txt: no such file"),
    ("dropout", "--pretraining_dropout 1.0 must be at least 0 and below 1"),
    ("no_column", "task.tsv: a table; name the column that holds its text with --text_column"),
    ("wrong_column", "task.tsv: no column 'text' (--text_column); its columns: label, text_a"),
    ("number", "task.jsonl, line 2: the text in column 'text' is a number (7), not a string"),
    ("column_of_text", "--text_column text: for tables (.csv, .tsv, .json, .jsonl); these files are plain text"),
    ("stream_epochs", "--streaming reads the text while training, so there are no epochs to count: give --max_steps"),
])
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, pretraining, capsys, case, message, write_corpus,
                                                 tiny_flags):
    good = write_corpus(tmp_path / "corpus", n=100)
    flags = {"empty": ([tmp_path / "empty.txt"], []), "latin1": ([tmp_path / "latin1.txt"], []),
             "block": (good, ["--max_seq_length", "1024", "--scratch_model_type", "", "--model", "MODEL"]),
             "thai": ([tmp_path / "thai.txt"], ["--masking", "whole_word"]),
             "knowledge_en": ([tmp_path / "en.txt"], ["--masking", "knowledge"]),
             "vocabulary": ([tmp_path / "abc.txt"], []), "missing": ([tmp_path / "nothing.txt"], []),
             "dropout": (good, ["--pretraining_dropout", "1.0"]),
             "stream_epochs": (good, ["--streaming", "True", "--max_steps", "-1"]),
             "no_column": ([tmp_path / "task.tsv"], []),
             "wrong_column": ([tmp_path / "task.tsv"], ["--text_column", "text"]),
             "number": ([tmp_path / "task.jsonl"], ["--text_column", "text"]),
             "column_of_text": (good, ["--text_column", "text"])}
    (tmp_path / "task.tsv").write_text("label\ttext_a\n1\t很好\n", encoding="utf-8")
    (tmp_path / "task.jsonl").write_text('{"text": "很好"}\n{"text": 7}\n', encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("第一行\n第二行\ncaf\u00e9 au lait\n".encode("utf-8").replace(
        "caf\u00e9".encode("utf-8"), "caf\u00e9".encode("latin-1")))
    (tmp_path / "thai.txt").write_text("ภาษาไทยเขียนติดกันไม่มีช่องว่าง\n" * 5, encoding="utf-8")
    (tmp_path / "en.txt").write_text("plain english text about many things\n" * 5, encoding="utf-8")
    (tmp_path / "abc.txt").write_text("abc abc\n" * 5, encoding="utf-8")
    files, extra = flags[case]
    if case == "block":  # a saved model whose position table holds 512
        out = tmp_path / "model"
        pretraining.main(tiny_flags(good, out, "--max_steps", "2", "--eval_strategy", "no", "--do_eval", "False"))
        extra = [e if e != "MODEL" else str(out) for e in extra]
    with pytest.raises(SystemExit) as exit_info:
        pretraining.run_main(lambda: pretraining.main(tiny_flags(files, tmp_path / "out", "--max_steps", "2", *extra)))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert [line for line in error.splitlines() if line.startswith("error:")] == [next(
        line for line in error.splitlines() if message in line)]


def test_a_bad_file_met_while_a_stream_trains_is_one_line_and_leaves_no_folder(tmp_path, pretraining, small_mlm,
                                                                              capsys, write_corpus, tiny_flags):
    (tmp_path / "binary.txt").write_bytes(bytes(range(128, 256)) * 8)
    files = [*write_corpus(tmp_path / "good", n=100)[:1], tmp_path / "binary.txt"]  # read after the first steps
    flags = tiny_flags(files, tmp_path / "out", "--max_steps", "60", "--model", str(small_mlm), "--streaming", "True",
                       "--validation_split_percentage", "0", "--do_eval", "False", "--eval_strategy", "no")
    with pytest.raises(SystemExit) as exit_info:
        pretraining.run_main(lambda: pretraining.main(flags[flags.index("--train_file"):]))
    error = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and "Traceback" not in "\n".join(error)
    assert error[-1].startswith("error: ") and "binary.txt: line 1 is not utf-8 text" in error[-1]
    assert not (tmp_path / "out").exists()


def alive(pid: str) -> bool:
    """Whether a process runs (a zombie no init reaped does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_run_killed_while_its_workers_read_the_corpus_leaves_no_process_behind(tmp_path, repo, tiny_flags):
    rng = random.Random(0)
    files = [tmp_path / "a.txt", tmp_path / "b.txt"]  # two files: read by two `datasets` workers
    for path in files:
        path.write_text("\n".join("".join(rng.choice("的一是在不了有和人这中大为上个国我以要他") for _ in range(60))
                                  for _ in range(40_000)), encoding="utf-8")
    process = subprocess.Popen([sys.executable, str(repo / "recipes" / "pretraining" / "run.py"),
                                *tiny_flags(files, tmp_path / "out", "--max_steps", "2")], cwd=repo,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children, deadline = [], time.monotonic() + 300
    while len(children) < 3:  # the two workers and the manager of their progress queue
        assert process.poll() is None and time.monotonic() < deadline, "the workers never started"
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        time.sleep(0.02)
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while any(map(alive, children)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)], "orphaned workers of a killed run still wait"


@pytest.fixture(scope="module")
def small_mlm(tmp_path_factory, pretraining, write_corpus, tiny_flags):
    """A saved MLM (2 steps of pretraining): what --model continues, its corpus read only by `datasets`."""
    folder = tmp_path_factory.mktemp("small-mlm")
    pretraining.main(tiny_flags(write_corpus(folder / "corpus", n=100), folder / "model", "--max_steps", "2",
                                "--eval_strategy", "no", "--do_eval", "False"))
    return folder / "model"


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("case, message", [
    ("empty", "empty.txt: no text (the file is empty or has blank lines only)"),
    ("whitespace", "blank.txt: no text (the file is empty or has blank lines only)"),
    ("binary", "binary.txt: line 1 is not utf-8 text"),
    ("corrupt_gz", "corrupt.txt.gz: cannot be read as gzip-compressed text"),
    ("second_of_two", "corrupt.txt.gz: cannot be read as gzip-compressed text"),  # read by a worker process
])
def test_a_bad_corpus_for_a_pretrained_model_is_one_line_and_exit_status_2(
        tmp_path, pretraining, small_mlm, capsys, case, message, streaming, write_corpus, tiny_flags):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_text("   \n\t\n \n", encoding="utf-8")
    (tmp_path / "binary.txt").write_bytes(bytes(range(128, 256)) * 8)
    (tmp_path / "corrupt.txt.gz").write_bytes(gzip.compress("很好\n".encode() * 500)[:40] + b"\x00garbage" * 50)
    files = {"empty": ["empty.txt"], "whitespace": ["blank.txt"], "binary": ["binary.txt"],
             "corrupt_gz": ["corrupt.txt.gz"]}.get(case)
    files = [tmp_path / f for f in files] if files else [*write_corpus(tmp_path / "good", n=100)[:1],
                                                          tmp_path / "corrupt.txt.gz"]
    flags = tiny_flags(files, tmp_path / "out", "--max_steps", "2", "--model", str(small_mlm), "--streaming",
                       str(streaming))
    flags = flags[flags.index("--train_file"):]  # no scratch model: the text is first read by `datasets`
    with pytest.raises(SystemExit) as exit_info:
        pretraining.run_main(lambda: pretraining.main(flags))
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error and error.strip().splitlines()[-1].startswith("error: ")
    assert message in error.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()  # a run refused before it wrote anything leaves no folder behind


@pytest.mark.parametrize("model_type", ["ernie", "roberta", "roformer"])
def test_scoring_the_masked_positions_only_gives_the_base_models_loss(tokenizer, model_type, chinese_sentences):
    import torch
    from transformers import AutoConfig, AutoModelForMaskedLM

    from model import masked_lm_class

    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=80,
                                  pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_config(config).eval()
    batch = UnitMaskingCollator(tokenizer, mlm_probability=0.15, seed=0)(block_rows(tokenizer, chinese_sentences(8)))
    expected = model(**batch).loss
    base = type(model)
    fast = masked_lm_class(config)(config).eval()  # built as the recipe builds it, with the same weights
    fast.load_state_dict(model.state_dict())
    assert type(fast).__name__ == base.__name__ and isinstance(fast, base)
    assert fast(**batch).loss.item() == pytest.approx(expected.item(), rel=1e-5)
    masked = (batch["labels"] != -100).sum().item()
    assert fast(**batch).logits.shape == (masked, len(tokenizer))  # scores for the masked positions only
    without_labels = fast(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    assert without_labels.logits.shape == (*batch["input_ids"].shape, len(tokenizer))


def test_the_cls_bag_of_tokens_loss_is_added_while_training_and_left_out_of_the_held_out_loss(tokenizer,
                                                                                               chinese_sentences):
    import torch
    from transformers import AutoConfig

    from model import bag_of_tokens_loss, check_mlm_head, masked_lm_class

    special = tuple(tokenizer.all_special_ids)
    scores = torch.randn(1, len(tokenizer))
    word, other = (tokenizer.convert_tokens_to_ids(token) for token in tokenizer.tokenize("昨天"))
    tokens = torch.tensor([[tokenizer.cls_token_id, word, word, other, tokenizer.sep_token_id, tokenizer.pad_token_id]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    logp = torch.log_softmax(scores, -1)[0]
    expected = -(2 / 3 * logp[word] + 1 / 3 * logp[other])  # [CLS], [SEP] and the padding are not counted
    assert bag_of_tokens_loss(scores, tokens, mask, special).item() == pytest.approx(expected.item(), rel=1e-6)

    config = AutoConfig.for_model("roformer", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=80,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    mlm_only = masked_lm_class(config)(config).train()
    both = masked_lm_class(config, special)(config).train()
    both.load_state_dict(mlm_only.state_dict())
    batch = UnitMaskingCollator(tokenizer, mlm_probability=0.15, seed=0)(block_rows(tokenizer, chinese_sentences(8)))
    with torch.no_grad():
        mlm = mlm_only(**batch).loss
        hidden = both.roformer(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
        original = torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])
        bag = bag_of_tokens_loss(both.cls(hidden[:, 0]), original, batch["attention_mask"], special)
        assert both(**batch).loss.item() == pytest.approx(mlm.item() + bag.item(), rel=1e-5)
        assert both.eval()(**batch).loss.item() == pytest.approx(mlm.item(), rel=1e-5)  # held out: MLM alone
    assert type(both).__name__ == "RoFormerForMaskedLM"

    from transformers import DistilBertConfig, DistilBertForMaskedLM  # its head is vocab_projector: not found

    from common.config.errors import OptionError

    distil = DistilBertForMaskedLM(DistilBertConfig(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=2,
                                                    hidden_dim=64))
    with pytest.raises(OptionError, match=r"--cls_objective bag_of_tokens: DistilBertForMaskedLM has no MLM head"):
        check_mlm_head(distil, cls_objective=True)


@pytest.mark.parametrize("model_type", ["bert", "roformer"])
def test_dropout_is_off_while_pretraining_and_the_saved_config_keeps_the_models_own(tmp_path, tokenizer, model_type,
                                                                                     chinese_sentences):
    import torch
    from transformers import AutoConfig, AutoModelForMaskedLM

    from model import set_dropout

    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=80)
    model = AutoModelForMaskedLM.from_config(config).train()
    batch = UnitMaskingCollator(tokenizer, mlm_probability=0.15, seed=0)(block_rows(tokenizer, chinese_sentences(8)))
    with torch.no_grad():
        assert model(**batch).loss.item() != model(**batch).loss.item()  # dropout draws anew on each call
        set_dropout(model, 0.0)
        assert model(**batch).loss.item() == model(**batch).loss.item()  # none left, attention's included
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["hidden_dropout_prob"] == saved["attention_probs_dropout_prob"] == 0.1  # what fine-tuning reads


def test_the_pretrained_model_has_the_architecture_of_the_scratch_rows_it_is_compared_with(repo):
    import yaml

    def architecture(path):
        settings = yaml.safe_load(path.read_text())
        return {key: value for key, value in settings.items() if key.startswith("scratch_")}

    pretrained = architecture(repo / "recipes/pretraining/configs/zh_corpus.yaml")
    assert pretrained["scratch_model_type"] == "roformer"  # rotary positions: README, "Why RoFormer"
    for config in ("chnsenticorp_scratch", "cluener_scratch"):
        assert architecture(repo / f"recipes/chinese_ernie/configs/{config}.yaml") == pretrained, config


def test_the_zh_pretrained_profile_compares_the_mini_model_with_scratch_models_of_its_architecture(repo):
    import re
    import shlex

    import yaml

    mini = yaml.safe_load((repo / "recipes/pretraining/configs/zh_corpus_mini.yaml").read_text())
    profile = (repo / "run_all.sh").read_text().split("zh_pretrained)\n", 1)[1].split(";;", 1)[0]
    flags = shlex.split(re.search(r'MINI="([^"]*)"', profile).group(1))
    given = {flag[2:]: int(value) for flag, value in zip(flags[::2], flags[1::2])}
    assert given == {key: mini[key] for key in ("scratch_layers", "scratch_hidden_size", "scratch_heads")}
    assert (mini["scratch_layers"], mini["scratch_hidden_size"]) == (4, 256) and mini["scratch_model_type"] == "roformer"
    runs = re.findall(r'"([^|"]+)\|([^|"]+)\|([^|"]+)\|([^"]*)"', profile)
    assert ("pretraining-zh_corpus_mini", "pretraining", "zh_corpus_mini", "") in runs
    fine_tunes = [run for run in runs if run[1] == "chinese_ernie"]
    assert len(fine_tunes) == 8  # four tasks (OCNLI too), from scratch and pretrained
    for name, _, _, run_flags in fine_tunes:  # the scratch rows at the mini size; the others from its pretraining
        expected = "$PRETRAINED" if name.endswith("-pretrained") else "$MINI"
        assert run_flags.endswith(expected), name
    assert f"--model $OUT_DIR/{mini['output_dir'].split('/')[-1]}" in profile


def test_a_streamed_run_trains_on_the_blocks_as_they_are_read(tmp_path, pretraining, write_corpus, tiny_flags):
    files = write_corpus(tmp_path / "corpus")
    out = tmp_path / "streamed"
    pretraining.main(tiny_flags(files, out, "--streaming", "True", "--max_steps", "12", "--masking", "knowledge",
                                "--eval_steps", "6", "--cls_objective", "bag_of_tokens"))
    results = json.loads((out / "all_results.json").read_text())
    assert results["masking"] == "knowledge" and "train" not in results["sizes"]  # a stream has no length
    assert results["cls_objective"] == "bag_of_tokens" and math.isfinite(results["train_loss"])
    assert results["sizes"]["validation"] > 0 and math.isfinite(results["eval_loss"])
    with pytest.raises(SystemExit) as exit_info:  # a stream needs a number of steps
        pretraining.run_main(lambda: pretraining.main(tiny_flags(files, tmp_path / "o2", "--streaming", "True",
                                                                 "--num_train_epochs", "1")))
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_english_text_continues_a_pretrained_model_with_whole_words(tmp_path, pretraining, minilm):
    text = tmp_path / "domain.txt"
    text.write_text("\n".join(f"The court heard case number {k} about the contract and ruled for the plaintiff."
                              for k in range(300)) + "\n", encoding="utf-8")
    out = tmp_path / "minilm-domain"
    pretraining.main(["--model", str(minilm), "--train_file", str(text), "--output_dir", str(out),
                      "--masking", "whole_word", "--max_steps", "16", "--eval_strategy", "steps", "--eval_steps", "8",
                      "--save_strategy", "no", "--load_best_model_at_end", "False", "--per_device_train_batch_size",
                      "8", "--learning_rate", "1e-3", "--validation_split_percentage", "10", "--max_seq_length", "64"])
    results = json.loads((out / "all_results.json").read_text())
    losses = [e["eval_loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"]
              if "eval_loss" in e]
    assert results["segmenter"] == "tokenizer" and losses[-1] < losses[0], losses  # its MLM head starts untrained
    from transformers import pipeline

    assert len(pipeline("fill-mask", model=str(out))("the court [MASK] for the plaintiff.")) == 5
