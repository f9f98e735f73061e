"""Shared fixtures: tiny random BERT and GPT-2 models with vocabularies built here, and data helpers."""

import os
import sys
import tempfile
from pathlib import Path

# Nothing in the tests may reach the Hub; tokenized caches go to a scratch folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="recipes-test-cache-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import datasets
import pytest

datasets.disable_progress_bars()

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED_DATA = REPO.parent / "shared" / "data"

WORDS = ("good great fine superb lovely bad awful poor dull terrible movie film plot actor the a is was "
         "very not and of it this that sports tech news world game match market stock").split()


def make_bert(folder: Path, words=WORDS, max_positions: int = 64, seed: int = 0) -> Path:
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


def make_gpt2(folder: Path, words=WORDS, seed: int = 0) -> Path:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2Model, GPT2TokenizerFast, set_seed

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([" ".join(words)] * 20, vocab_size=300, min_frequency=1,
                            special_tokens=["<|endoftext|>"])
    bpe.save_model(str(folder))
    # from_pretrained(folder), not GPT2TokenizerFast(vocab_file=...), which silently builds an empty vocabulary
    tokenizer = GPT2TokenizerFast.from_pretrained(str(folder), eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                                  unk_token="<|endoftext|>")
    assert len(tokenizer("the movie was very good")["input_ids"]) >= 5
    assert tokenizer.pad_token is None  # the recipe must supply one
    tokenizer.save_pretrained(str(folder))
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    set_seed(seed)
    GPT2Model(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_bert(tmp_path_factory.mktemp("tiny-bert"), seed=int(os.environ.get("TINY_MODEL_SEED", "0")))


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return make_gpt2(tmp_path_factory.mktemp("tiny-gpt2"), seed=int(os.environ.get("TINY_MODEL_SEED", "0")))


def sentiment_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Sentences whose label follows from their adjective, so even a tiny model can learn them."""
    import random

    rng = random.Random(seed)
    good, bad = "good great fine superb lovely".split(), "bad awful poor dull terrible".split()
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        word = rng.choice(good if label == "pos" else bad)
        noun = rng.choice(["movie", "film", "plot", "actor"])
        rows.append((f"the {noun} was very {word}" + " ." * rng.randint(0, 6), label))
    return rows


def write_csv(path: Path, rows, header=("text", "label")) -> Path:
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path
