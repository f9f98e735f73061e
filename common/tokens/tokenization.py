"""Tokenize every split once, cache the result, and report truncation.

Inputs are not padded here (the collator pads each batch to its own longest row) unless
`pad_to_max_length` asks for the reference scripts' fixed-length padding. The tokenized splits are
cached as Arrow files keyed by the data's content and the tokenizer, so a second run with the same
data and tokenizer loads them instead of tokenizing again.
"""

import json
import logging
from pathlib import Path

import datasets
import numpy as np
from datasets.fingerprint import Hasher

from common.config.errors import OptionError
from common.data.errors import DataError
from common.data.tables import TextData
from common.tokens.long_text import check_stride, cut_head_tail, head_tokens_for


class TokenizedSplits(dict):
    """{split name: tokenized `datasets.Dataset`}, and `long_texts`: per split, how many texts were cut or
    windowed (for all_results.json)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.long_texts: dict[str, dict] = {}

logger = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when encode() changes, so old caches are not reused


def max_input_length(tokenizer, model_config, requested: int | None) -> int:
    """The longest input the model takes: the tokenizer's limit, else the position table's size."""
    limit = tokenizer.model_max_length
    if limit is None or limit > 100_000:  # tokenizers without a limit report a huge number
        limit = getattr(model_config, "max_position_embeddings", None) or getattr(model_config, "n_positions", 512)
    length = min(requested, limit) if requested else limit
    special = tokenizer.num_special_tokens_to_add(pair=False)
    if length <= special:
        raise OptionError(f"--max_seq_length {length} leaves no room for text: the model adds {special} special "
                          "tokens to every input")
    return length


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of what decides the tokenizer's output, for the cache key of tokenized data."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = tokenizer
    if backend is not None:
        # The backend remembers the truncation and padding of its last call: not part of its identity.
        state = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
    return Hasher.hash([type(tokenizer).__name__, state, tokenizer.padding_side, tokenizer.truncation_side])


def tokenization_settings(data_args) -> dict:
    """The keyword arguments of tokenize_splits from a recipe's TextDataArguments."""
    return {name: getattr(data_args, name) for name in ("pad_to_max_length", "overwrite_cache", "long_text",
                                                          "head_tokens", "stride", "preprocessing_num_workers")}


def tokenize_splits(raw: TextData, tokenizer, max_length: int, pad_to_max_length: bool = False,
                    overwrite_cache: bool = False, cache_dir: str | None = None, long_text: str = "truncate",
                    head_tokens: int | None = None, stride: int = 32,
                    preprocessing_num_workers: int | None = None) -> TokenizedSplits:
    """Return one tokenized `datasets.Dataset` per split (model inputs, plus `labels` where known).

    Texts longer than `max_length` are cut (`long_text` truncate or head_tail) or split into windows
    (`windows`: one row per window, and a `document` column naming the input row each came from).
    How many were cut or windowed is logged and kept in the result's `long_texts` for all_results.json.
    A split tokenized before (the same rows, tokenizer and settings) is read from the cache, and the log says so;
    `preprocessing_num_workers` processes tokenize the others.
    """
    text_columns = [raw.text_column] + ([raw.text_pair_column] if raw.text_pair_column else [])
    cache_dir = Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / "recipe_tokenized"
    cache_dir.mkdir(parents=True, exist_ok=True)
    padding = "max_length" if pad_to_max_length else False
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=raw.text_pair_column is not None)
    if long_text == "head_tail":
        if raw.text_pair_column:
            raise OptionError("--long_text head_tail is for single texts; for text pairs use windows (the first text "
                              "is kept whole and the second windowed) or truncate")
        head_tokens = head_tokens_for(head_tokens, budget)
    elif head_tokens is not None:
        raise OptionError(f"--head_tokens is for --long_text head_tail (this run: {long_text})")
    if long_text == "windows":
        check_stride(stride, budget)
        if not getattr(tokenizer, "is_fast", False):
            raise OptionError("--long_text windows needs a fast tokenizer (its overflowing windows)")
    settings = {"long_text": long_text, "max_length": max_length, **(
        {"head_tokens": head_tokens, "tail_tokens": budget - head_tokens} if long_text == "head_tail"
        else {"stride": stride} if long_text == "windows" else {})}

    def encode(batch, rows, where):
        texts = [batch[c] for c in text_columns]
        encoded = tokenizer(*texts, truncation=False, padding=False, verbose=False,
                            return_special_tokens_mask=long_text == "head_tail")
        long = [len(ids) > max_length for ids in encoded["input_ids"]]
        source = list(range(len(rows)))  # the batch row each output row comes from
        if long_text == "windows" and any(long):
            if len(texts) == 2:
                check_pair_room(tokenizer, texts[0], batch["_line"], max_length, stride, where)
            encoded = tokenizer(*texts, truncation="only_second" if len(texts) == 2 else True, max_length=max_length,
                                stride=stride, return_overflowing_tokens=True, padding=padding)
            source = encoded.pop("overflow_to_sample_mapping")
        elif long_text == "head_tail" and any(long):
            for row in np.flatnonzero(long):
                cut_head_tail(encoded, row, head_tokens, budget)
            encoded.pop("special_tokens_mask")
            if padding:
                encoded = tokenizer.pad(dict(encoded), padding=padding, max_length=max_length)
        elif any(long) or padding:  # a second pass only for batches that need cutting or padding
            encoded = tokenizer(*texts, truncation=True, max_length=max_length, padding=padding)
        encoded = {key: list(value) for key, value in encoded.items() if key != "special_tokens_mask"}
        encoded.update({key: [batch[key][i] for i in source] for key in batch if key not in text_columns})
        encoded.update(document=[rows[i] for i in source], long=[long[i] for i in source])
        return encoded

    tokenized = TokenizedSplits()
    for name, split in raw.splits.items():
        columns = text_columns + ["_line"] + (["labels"] if "labels" in split.frame else [])
        dataset = datasets.Dataset.from_pandas(split.frame[columns], preserve_index=False)
        fingerprint = Hasher.hash([dataset._fingerprint, tokenizer_fingerprint(tokenizer), settings, padding,
                                   text_columns, CACHE_VERSION])
        cache_file = cache_dir / f"{fingerprint}.arrow"
        workers = preprocessing_num_workers if preprocessing_num_workers and len(dataset) > 1 else None
        cached = cached_copy(cache_file, workers) if not overwrite_cache else None
        if cached is not None:  # whichever number of processes wrote it
            dataset = datasets.concatenate_datasets([datasets.Dataset.from_file(str(f)) for f in cached])
            logger.info(f"{name}: {len(dataset):,} tokenized rows read from the cache ({cached[0].name}: the same rows, "
                        "tokenizer and settings as an earlier run); --overwrite_cache True tokenizes again")
        else:
            dataset = dataset.map(
                encode,
                batched=True,
                with_indices=True,
                fn_kwargs={"where": f"{split.source}, {split.unit}"},
                remove_columns=dataset.column_names,
                cache_file_name=str(cache_file),
                new_fingerprint=fingerprint,
                load_from_cache_file=False,
                num_proc=workers,
                desc=f"Tokenizing {name}",
            )
        tokenized.long_texts[name] = report_long_texts(name, split, dataset, max_length, settings)
        tokenized[name] = dataset.remove_columns(["_line", "long"] + ([] if long_text == "windows" else ["document"]))
    return tokenized


def cached_copy(cache_file: Path, workers: int | None) -> list[Path] | None:
    """The files of a complete cached copy of one tokenized split: one file, or the shards `workers` (or any other
    number of) processes wrote, in order; None when there is none. A shard missing (a run killed while it wrote
    them) means no copy: datasets moves each file into place only once it is whole."""
    if cache_file.is_file():
        return [cache_file]
    shards = sorted(cache_file.parent.glob(f"{cache_file.stem}_*_of_*.arrow"))
    by_count = {}
    for shard in shards:
        rank, _, count = shard.stem.rsplit("_", 3)[-3:]
        by_count.setdefault(int(count), {})[int(rank)] = shard
    counts = sorted(by_count, key=lambda n: n != workers)  # this run's number of processes first
    for count in counts:
        if sorted(by_count[count]) == list(range(count)):
            return [by_count[count][rank] for rank in range(count)]
    return None


def check_pair_room(tokenizer, first_texts, lines, max_length: int, stride: int, where: str) -> None:
    """Windows over a pair's second text need the first text whole in each, with more room than the stride."""
    special = tokenizer.num_special_tokens_to_add(pair=True)
    for ids, line in zip(tokenizer(first_texts, add_special_tokens=False)["input_ids"], lines):
        if max_length - special - len(ids) <= stride:
            raise DataError(f"{where} {line}: the first text of the pair is {len(ids)} tokens long, which "
                            f"leaves no more than --stride {stride} of the {max_length} for windows over the second "
                            "text (windows keep the first text whole): raise --max_seq_length or lower --stride")


def report_long_texts(name: str, split, dataset: datasets.Dataset, max_length: int, settings: dict) -> dict:
    """Log how many texts were longer than the window and what became of them; the same as a dict."""
    documents = np.asarray(dataset["document"])
    long = np.asarray(dataset["long"], dtype=bool)
    lines = np.asarray(dataset["_line"])[long]
    lines = list(dict.fromkeys(lines.tolist()))  # once per document, windows or not
    texts = int(documents[-1]) + 1 if len(documents) else 0
    report = {**settings, "texts": texts, "longer_than_max_length": len(lines)}
    if settings["long_text"] == "windows":
        report["windows"] = len(documents)
    if lines:
        shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
        what = {"truncate": "truncated (their ends never read; --long_text head_tail or windows read them)",
                "head_tail": f"cut to their first {settings.get('head_tokens')} and last {settings.get('tail_tokens')} "
                             "tokens (--long_text head_tail)",
                "windows": f"split into overlapping windows ({len(documents):,} windows for {texts:,} texts)"}
        logger.warning(f"{name}: {len(lines):,} of {texts:,} texts were longer than {max_length} tokens and were "
                       f"{what[settings['long_text']]} ({split.source}, {split.unit}s {shown})")
    return report
