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
from datasets.fingerprint import Hasher

from common.config.errors import OptionError
from common.data.tables import TextData

logger = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when encode() changes, so old caches are not reused


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
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = tokenizer
    if backend is not None:
        # The backend remembers the truncation and padding of its last call: not part of its identity.
        state = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
    return Hasher.hash([type(tokenizer).__name__, state, tokenizer.padding_side, tokenizer.truncation_side])


def tokenize_splits(raw: TextData, tokenizer, max_length: int, pad_to_max_length: bool = False,
                    overwrite_cache: bool = False, cache_dir: str | None = None) -> dict[str, datasets.Dataset]:
    """Return one tokenized `datasets.Dataset` per split (model inputs, plus `labels` where known)."""
    text_columns = [raw.text_column] + ([raw.text_pair_column] if raw.text_pair_column else [])
    cache_dir = Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / "recipe_tokenized"
    cache_dir.mkdir(parents=True, exist_ok=True)
    padding = "max_length" if pad_to_max_length else False

    def encode(batch):
        texts = [batch[c] for c in text_columns]
        encoded = tokenizer(*texts, truncation=False, padding=False, verbose=False)
        truncated = [len(ids) > max_length for ids in encoded["input_ids"]]
        if any(truncated) or padding:  # a second pass only for batches that need cutting or padding
            encoded = tokenizer(*texts, truncation=True, max_length=max_length, padding=padding)
        encoded["truncated"] = truncated
        return encoded

    tokenized = {}
    for name, split in raw.splits.items():
        columns = text_columns + ["_line"] + (["labels"] if "labels" in split.frame else [])
        dataset = datasets.Dataset.from_pandas(split.frame[columns], preserve_index=False)
        fingerprint = Hasher.hash([dataset._fingerprint, tokenizer_fingerprint(tokenizer), max_length,
                                   padding, text_columns, CACHE_VERSION])
        dataset = dataset.map(
            encode,
            batched=True,
            remove_columns=text_columns,
            cache_file_name=str(cache_dir / f"{fingerprint}.arrow"),
            new_fingerprint=fingerprint,
            load_from_cache_file=not overwrite_cache,
            desc=f"Tokenizing {name}",
        )
        truncated = [line for line, cut in zip(dataset["_line"], dataset["truncated"]) if cut]
        if truncated:
            shown = ", ".join(map(str, truncated[:5])) + (", ..." if len(truncated) > 5 else "")
            logger.warning(f"{name}: {len(truncated):,} of {len(dataset):,} texts were longer than {max_length} "
                           f"tokens and were truncated ({split.source}, {split.unit}s {shown})")
        tokenized[name] = dataset.remove_columns(["_line", "truncated"])
    return tokenized
