"""The pretraining corpus: plain-text files read and checked, a held-out share set aside, the documents
tokenized and packed into blocks.

A file holds one document per line (.txt, or .txt.gz read as it is); blank lines are skipped and
counted. A labelled task's table (.csv, .tsv, .json, .jsonl) gives the texts of its --text_column, one
document per row, its labels unread (task-adaptive pretraining); rows with no text are skipped and
counted. Without --validation_file, every n-th document of each file is held out (n = 100 /
--validation_split_percentage), so the split needs no shuffling and is the same when streaming. The
documents of a file are joined end to end with a [SEP] between two, and cut into blocks of
[CLS] + max_seq_length - 2 tokens + [SEP]; each file's last block is shorter (nothing is dropped).
In memory, the blocks are built once by `datasets` and cached (a rerun with the same files,
tokenizer and settings reads the cache); with --streaming they are built while training, pass after pass
until --max_steps.
"""

import gzip
import itertools
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from common.data.benchmarks import benchmark_folder
from common.data.errors import DataError
from common.data.tables import read_table
from common.data.text import text_problem

from masking import knowledge_spans, starts_from_spans, starts_from_word_ids, word_spans  # this folder's module: run.py put the folder on sys.path

logger = logging.getLogger(__name__)

BATCH_DOCUMENTS = 1000  # documents tokenized in one call of the fast tokenizer
TABLES = (".csv", ".tsv", ".json", ".jsonl")  # a labelled task's files: their --text_column is the text


def corpus_files(data_args) -> dict[str, list[Path]]:
    """The training (and held-out) files, each checked to exist."""
    if data_args.benchmark:
        folder = benchmark_folder(data_args.data_dir, data_args.benchmark)
        files = sorted(folder.glob("*.txt.gz")) + sorted(folder.glob("*.txt"))
        if not files:
            raise DataError(f"--benchmark {data_args.benchmark}: no .txt or .txt.gz files in {folder}")
        found = {"train": files}
    elif data_args.train_file:
        found = {"train": [Path(f) for f in data_args.train_file]}
    else:
        raise DataError("no training text: give --train_file (one or more .txt or .txt.gz files, or a task's table "
                        "with --text_column) or --benchmark")
    if data_args.validation_file:
        found["validation"] = [Path(f) for f in data_args.validation_file]
    for path in (p for files in found.values() for p in files):
        if not path.is_file():
            raise DataError(f"{path}: no such file")
    if data_args.text_column and not any(p.suffix.lower() in TABLES for files in found.values() for p in files):
        raise DataError(f"--text_column {data_args.text_column}: for tables ({', '.join(TABLES)}); these files are "
                        "plain text, one document per line")
    return found


def read_documents(path: Path, encoding: str, text_column: str | None = None) -> Iterator[str]:
    """A file's documents (its non-blank lines, stripped; a table's texts); a line not in `encoding` stops with its
    number."""
    if path.suffix.lower() in TABLES:
        yield from table_documents(path, encoding, text_column)
        return
    opener = gzip.open if path.suffix == ".gz" else open
    line_number, documents = 0, 0
    try:
        with opener(path, "rb") as f:  # lines decoded one by one, so that a bad byte is found on its own line
            for line_number, raw in enumerate(f, 1):
                text = raw.decode(encoding).strip()
                if text:
                    documents += 1
                    yield text
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: line {line_number} is not {encoding} text ({error.reason} at byte {error.start} "
                        f"of the line): convert the file, or give its --encoding") from None
    except (OSError, EOFError, zlib.error) as error:  # a truncated, corrupt or not-really-gzip file
        raise DataError(f"{path}: cannot be read as {'gzip-compressed ' if path.suffix == '.gz' else ''}text "
                        f"({error})") from None
    if not documents:
        raise DataError(f"{path}: no text (the file is empty or has blank lines only)")
    if line_number > documents:
        logger.info(f"{path}: {documents:,} documents; {line_number - documents:,} blank lines skipped")


def table_documents(path: Path, encoding: str, text_column: str | None) -> list[str]:
    """The texts of a table's `text_column`, one document per row (stripped); rows without text are counted."""
    if not text_column:
        raise DataError(f"{path}: a table; name the column that holds its text with --text_column")
    table = read_table(path, encoding=encoding)
    if text_column not in table.frame.columns:
        columns = ", ".join(c for c in table.frame.columns if c != "_line")
        raise DataError(f"{path}: no column '{text_column}' (--text_column); its columns: {columns}")
    documents, empty = [], []
    for index, value in table.frame[text_column].items():
        problem = text_problem(value, text_column)
        if problem and not problem.startswith("empty"):  # a number or a list: the file is not what it seems
            raise DataError(f"{table.where(index)}: {problem}")
        if problem:  # missing or blank, as a blank line in a text file
            empty.append(table.where(index))
        else:
            documents.append(value.strip())
    if not documents:
        raise DataError(f"{path}: no text in column '{text_column}'")
    if empty:
        logger.info(f"{path}: {len(documents):,} documents; {len(empty):,} rows with no text in '{text_column}' "
                    f"skipped (first: {empty[0]})")
    return documents


def documents_of(path: Path, encoding: str, part: str, every: int, text_column: str | None = None) -> Iterator[str]:
    """A file's training documents (part "train") or held-out ones ("validation"): every `every`-th is held out."""
    for k, text in enumerate(read_documents(path, encoding, text_column)):
        held_out = bool(every) and k % every == every - 1
        if part == "all" or held_out == (part == "validation"):
            yield text


def unit_starts(texts: list[str], encodings, masking: str, segmenter: str) -> list[list[int]]:
    """For each text, 1 where a masking unit begins (see masking.py)."""
    if segmenter == "tokenizer":
        return [starts_from_word_ids(encodings.word_ids(k)) for k in range(len(texts))]
    spans = [knowledge_spans(text)[0] if masking == "knowledge" else word_spans(text) for text in texts]
    return [starts_from_spans(offsets, text_spans, len(text))
            for offsets, text_spans, text in zip(encodings["offset_mapping"], spans, texts)]


def blocks(files: list[str], encoding: str, part: str, every: int, tokenizer, block_length: int, masking: str,
           segmenter: str, cache_key: list[str], text_column: str | None = None) -> Iterator[dict]:
    """Blocks of `block_length` tokens from the files' documents (for Dataset/IterableDataset.from_generator,
    which runs one generator per shard of `files`). `cache_key`: the files' sizes and times, for the cache."""
    units = masking != "token"
    body = block_length - 2
    special = set(tokenizer.all_special_ids)
    for path in files:
        ids, starts = [], []
        documents = documents_of(Path(path), encoding, part, every, text_column)
        while batch := list(itertools.islice(documents, BATCH_DOCUMENTS)):
            encodings = tokenizer(batch, add_special_tokens=False, return_offsets_mapping=units)
            batch_starts = unit_starts(batch, encodings, masking, segmenter) if units else None
            for k, document in enumerate(encodings["input_ids"]):
                ids += [*document, tokenizer.sep_token_id]
                if units:
                    starts += [*batch_starts[k], 1]
                while len(ids) > body:
                    yield block(ids[:body], starts[:body] if units else None, tokenizer, special)
                    ids, starts = ids[body:], starts[body:]
        if ids:
            yield block(ids, starts if units else None, tokenizer, special)


def passes_of_blocks(limit: int | None = None, **kwargs) -> Iterator[dict]:
    """--streaming: the files' blocks (the first `limit` of them), pass after pass, each row carrying its pass number
    (its masks differ from pass to pass). The stream never ends, as --max_steps ends the training: Trainer then
    counts every step in one epoch, which is what it needs to skip to a resumed run's position exactly."""
    for number in itertools.count():
        for row in itertools.islice(blocks(**kwargs), limit):
            yield {**row, "pass": number}


def block(body: list[int], starts: list[int] | None, tokenizer, special: set[int]) -> dict:
    """One block: [CLS] body [SEP], which tokens are special, and (for unit masking) where units begin."""
    ids = [tokenizer.cls_token_id, *body, tokenizer.sep_token_id]
    row = {"input_ids": ids, "special_tokens_mask": [int(i in special) for i in ids]}
    if starts is not None:
        row["word_starts"] = [1, *starts, 1]
    return row


def held_out_every(data_args, files: dict) -> int:
    """Every how many training documents one is held out (0: none, a --validation_file is given or the share is 0)."""
    if "validation" in files or not data_args.validation_split_percentage:
        return 0
    every = max(2, round(100 / data_args.validation_split_percentage))
    logger.info(f"Held out for evaluation: every {every}th document of each training file ({100 / every:.2g}%)")
    return every


def block_datasets(files: dict[str, list[Path]], every: int, data_args, tokenizer, masking: str,
                   segmenter: str | None) -> dict:
    """The training blocks (a Dataset, or with --streaming an IterableDataset) and the held-out ones (a Dataset)."""
    parts = {"train": (files["train"], "train" if every else "all")}
    if "validation" in files:
        parts["validation"] = (files["validation"], "all")
    elif every:
        parts["validation"] = (files["train"], "validation")
    result = {}
    for name, (paths, part) in parts.items():
        kwargs = {"files": [str(p) for p in paths], "encoding": data_args.encoding, "part": part, "every": every,
                  "tokenizer": tokenizer, "block_length": data_args.max_seq_length, "masking": masking,
                  "segmenter": segmenter, "text_column": data_args.text_column,
                  "cache_key": [f"{p.stat().st_size}-{p.stat().st_mtime_ns}" for p in paths]}
        if name == "train" and data_args.streaming:  # tuples: datasets would read each file of a list as a shard
            kwargs = {**kwargs, "files": tuple(kwargs["files"]), "cache_key": tuple(kwargs["cache_key"]),
                      "limit": data_args.max_train_samples}
            result[name] = datasets.IterableDataset.from_generator(passes_of_blocks, gen_kwargs=kwargs)
            continue
        try:
            result[name] = datasets.Dataset.from_generator(blocks, gen_kwargs=kwargs,
                                                           num_proc=2 if len(paths) > 1 else None)
        except datasets.exceptions.DatasetGenerationError:
            # a worker process's DataError arrives without its message: read the files here to raise it
            for path in paths:
                for _ in read_documents(path, data_args.encoding, data_args.text_column):
                    pass
            raise
        limit = data_args.max_train_samples if name == "train" else data_args.max_eval_samples
        if limit and limit < len(result[name]):
            flag = "--max_train_samples" if name == "train" else "--max_eval_samples"
            logger.info(f"{name}: the first {limit:,} of {len(result[name]):,} blocks ({flag})")
            result[name] = result[name].select(range(limit))
    return result


@dataclass
class Corpus:
    """The corpus as the results and the model card describe it (what run_facts reads of a recipe's data)."""

    files: dict[str, list[Path]]
    splits: dict
    every: int
    notes: list[str] = field(default_factory=list)

    def sources(self) -> dict[str, str]:
        """Each split's files (the held-out share named as such)."""
        found = {name: ", ".join(str(p) for p in paths) for name, paths in self.files.items()}
        if self.every:
            found["validation"] = f"every {self.every}th document of the training files"
        return found

    def sizes(self) -> dict[str, int]:
        """Blocks per split (a streamed split has no size known in advance)."""
        return {name: len(split) for name, split in self.splits.items() if isinstance(split, datasets.Dataset)}
