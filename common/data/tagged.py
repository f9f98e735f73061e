"""Reading tagged sentences (token classification): CoNLL column files, JSON lines, Hub datasets.

Every sentence keeps the file line of each token, so errors name the line and predictions can be
written back into the input's own layout. Tags are checked and converted to IOB2 on load.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from common.data.benchmarks import TAGGED_BENCHMARK_FILES, benchmark_folder
from common.data.errors import DataError
from common.data.hub import hub_splits
from common.data.tables import open_text, require_file
from common.data.tag_schemes import detect_scheme, label_list_for, parse_tag, to_iob2

logger = logging.getLogger(__name__)


@dataclass
class TaggedSplit:
    """One split of tagged sentences (words or characters), with the file line of every token."""

    tokens: list[list[str]]
    tags: list[list[str]] | None  # None: an unlabelled file
    lines: list[list[int]]  # the file line of every token (JSON lines: the sentence's line)
    source: str
    format: str  # "conll", "jsonl", "hub", or for characters "cluener" and "char_bio"
    ids: list | None = None  # record ids where the file has them (CLUENER)


@dataclass
class TaggedData:
    """The tagged splits of one dataset, and what loading noted about them."""

    splits: dict[str, TaggedSplit]
    notes: list[str] = field(default_factory=list)

    def sources(self) -> dict[str, str]:
        """Each split's file (or source), for the results file."""
        return {name: split.source for name, split in self.splits.items()}

    def sizes(self) -> dict[str, int]:
        """Each split's number of sentences."""
        return {name: len(split.tokens) for name, split in self.splits.items()}


def read_conll(path, tag_column: int = -1, encoding: str = "utf-8") -> TaggedSplit:
    """Whitespace-separated columns, token first; blank lines end sentences; -DOCSTART- lines are skipped.

    A file whose lines have one column only is read as unlabelled (tokens only).
    """
    path = require_file(path)
    tokens, tags, lines = [], [], []
    sentence, sentence_tags, sentence_lines = [], [], []
    columns_seen, first_columns = set(), None  # first_columns: (count, line) of the first tagged line
    with open_text(path, encoding=encoding) as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if sentence:
                    tokens.append(sentence), tags.append(sentence_tags), lines.append(sentence_lines)
                    sentence, sentence_tags, sentence_lines = [], [], []
                continue
            columns_seen.add(len(fields))
            needed = tag_column + 1 if tag_column >= 0 else -tag_column + 1
            if len(fields) > 1 and len(fields) < needed:
                raise DataError(f"{path}, line {number}: {len(fields)} columns, the tag column "
                                f"{tag_column} needs at least {needed}")
            if len(fields) > 1 and first_columns is None:
                first_columns = (len(fields), number)
            elif len(fields) > 1 and len(fields) != first_columns[0]:
                # e.g. CoNLL-2003 with the NER column missing: the chunk tag B-NP would be read as type NP
                raise DataError(f"{path}, line {number}: {len(fields)} columns, but line {first_columns[1]} has "
                                f"{first_columns[0]}: a column is missing or extra (every line needs the same columns)")
            sentence.append(fields[0])
            sentence_tags.append(fields[tag_column] if len(fields) > 1 else None)
            sentence_lines.append(number)
    if sentence:
        tokens.append(sentence), tags.append(sentence_tags), lines.append(sentence_lines)
    if not tokens:
        raise DataError(f"{path}: no sentences" + (" (only -DOCSTART- lines)" if path.stat().st_size else " (empty file)"))
    if columns_seen == {1}:
        return TaggedSplit(tokens, None, lines, str(path), "conll")
    if 1 in columns_seen:
        line = next(n for sent, ln in zip(tags, lines) for t, n in zip(sent, ln) if t is None)
        raise DataError(f"{path}, line {line}: a token without a tag column")
    refuse_chunk_tags(path, tags, tag_column, first_columns[0])
    return TaggedSplit(tokens, tags, lines, str(path), "conll")


# Phrase types of CoNLL-2000/2003's chunk column (B-NP, I-VP, ...): IOB tags too, but not entities
CHUNK_TYPES = {"NP", "VP", "PP", "ADJP", "ADVP", "SBAR", "PRT", "INTJ", "CONJP", "LST", "UCP"}


def refuse_chunk_tags(path, tags: list[list[str]], tag_column: int, columns: int) -> None:
    """A tag column of chunk tags only is the chunk column, read where the entity column is missing."""
    types = {tag.split("-", 1)[1] for sentence in tags for tag in sentence if "-" in tag}
    if types and types <= CHUNK_TYPES and {"NP", "VP"} & types:
        raise DataError(f"{path}: the tag column (column {tag_column} of {columns}) holds chunk tags "
                        f"({', '.join(sorted(types)[:6])}), not entity types: is the entity column missing? "
                        "CoNLL-2003 lines are: word POS chunk entity. Give --tag_column if the entity tags are in "
                        "another column")


def read_token_jsonl(path, tokens_key: str = "tokens", tags_key: str = "tags", encoding: str = "utf-8") -> TaggedSplit:
    """One JSON object per line with a list of tokens and (optionally) a list of tags of the same length."""
    path = require_file(path)
    tokens, tags, lines = [], [], []
    with open_text(path, encoding=encoding) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {number}: invalid JSON: {e.msg}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}, line {number}: expected a JSON object, found {type(record).__name__}")
            if not isinstance(record.get(tokens_key), list) or not record[tokens_key]:
                raise DataError(f"{path}, line {number}: '{tokens_key}' must be a non-empty list")
            blank = [i for i, t in enumerate(record[tokens_key])
                     if not isinstance(t, (str, int, float)) or not str(t).strip()]
            if blank:
                raise DataError(f"{path}, line {number}: token {blank[0]} is {record[tokens_key][blank[0]]!r}; every "
                                "token must be a non-empty string")
            sentence_tags = record.get(tags_key)
            if sentence_tags is not None and not (isinstance(sentence_tags, list)
                                                  and all(isinstance(t, str) for t in sentence_tags)):
                raise DataError(f"{path}, line {number}: '{tags_key}' must be a list of strings")
            if sentence_tags is not None and len(sentence_tags) != len(record[tokens_key]):
                raise DataError(f"{path}, line {number}: {len(record[tokens_key])} tokens but "
                                f"{len(sentence_tags)} tags")
            tokens.append([str(t) for t in record[tokens_key]])
            tags.append(sentence_tags)
            lines.append([number] * len(record[tokens_key]))
    if not tokens:
        raise DataError(f"{path}: no sentences (empty file)")
    labelled = [t is not None for t in tags]
    if any(labelled) and not all(labelled):
        number = lines[labelled.index(False)][0]
        raise DataError(f"{path}, line {number}: no '{tags_key}' (other lines have them)")
    return TaggedSplit(tokens, tags if all(labelled) else None, lines, str(path), "jsonl")


def read_tagged_file(path, tag_column: int = -1, encoding: str = "utf-8") -> TaggedSplit:
    """A tagged file by its suffix: JSON lines of tokens and tags, else CoNLL columns."""
    suffix = Path(path).suffix.lower()
    if suffix in (".json", ".jsonl"):
        return read_token_jsonl(path, encoding=encoding)
    return read_conll(path, tag_column, encoding)


def load_hub_tagged(name: str, config: str | None, notes: list[str]) -> dict[str, TaggedSplit]:
    """A Hub dataset with `tokens` and `ner_tags` (ClassLabel ids, turned into their names)."""
    import datasets

    splits = {}
    for split, (key, dataset) in hub_splits(name, config, notes).items():
        feature = dataset.features["ner_tags"].feature
        names = feature.names if isinstance(feature, datasets.ClassLabel) else None
        tags = [[names[t] if names else str(t) for t in row] for row in dataset["ner_tags"]]
        lines = [[i + 1] * len(row) for i, row in enumerate(dataset["tokens"])]
        splits[split] = TaggedSplit(dataset["tokens"], tags, lines, f"{name} [{key}]", "hub")
    return splits


def normalise_tags(split: TaggedSplit, scheme: str, notes: list[str]) -> None:
    """Check every tag and convert the split to IOB2 (scheme 'auto' detects it); count the changes."""
    if split.tags is None:
        return
    for sentence_tags, sentence_lines in zip(split.tags, split.lines):
        for tag, line in zip(sentence_tags, sentence_lines):
            try:
                parse_tag(tag)
            except ValueError as e:
                raise DataError(f"{split.source}, line {line}: {e}") from None
    if scheme == "auto":
        scheme = detect_scheme(split.tags)
    changed = 0
    for i, (sentence_tags, sentence_lines) in enumerate(zip(split.tags, split.lines)):
        try:
            converted = to_iob2(sentence_tags, scheme)
        except ValueError as e:
            raise DataError(f"{split.source}, line {sentence_lines[0]}: {e}") from None
        changed += sum(a != b for a, b in zip(sentence_tags, converted))
        split.tags[i] = converted
    if scheme != "iob2" or changed:
        notes.append(f"{split.source}: tags read as {scheme.upper()}, {changed:,} converted to IOB2")


def load_tagged_data(args, reader=None) -> TaggedData:
    """Train/validation/test tagged sentences from files, a Hub dataset or a benchmark folder.

    `reader(path)` reads one file (default: CoNLL columns or JSON lines with tokens and tags).
    """
    notes = []
    reader = reader or (lambda path: read_tagged_file(path, args.tag_column, args.encoding))
    files = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
    if any(files.values()):
        splits = {k: reader(v) for k, v in files.items() if v}
    elif args.dataset_name:
        splits = load_hub_tagged(args.dataset_name, args.dataset_config_name, notes)
    elif args.benchmark:
        folder = benchmark_folder(args.data_dir, args.benchmark)
        if args.benchmark not in TAGGED_BENCHMARK_FILES:
            raise DataError(f"unknown benchmark '{args.benchmark}' (known: {', '.join(TAGGED_BENCHMARK_FILES)})")
        splits = {k: reader(folder / name) for k, name in TAGGED_BENCHMARK_FILES[args.benchmark].items()}
    else:
        raise DataError("no data given: set --train_file/--validation_file/--test_file, --dataset_name or --benchmark")
    for split in splits.values():
        normalise_tags(split, args.tag_scheme, notes)
    for name, limit in (("train", args.max_train_samples), ("validation", args.max_eval_samples),
                        ("test", args.max_predict_samples)):
        split = splits.get(name)
        if limit is not None and split is not None and limit < len(split.tokens):
            notes.append(f"{name}: kept the first {limit:,} of {len(split.tokens):,} sentences of {split.source}")
            split.tokens, split.lines = split.tokens[:limit], split.lines[:limit]
            split.tags = split.tags[:limit] if split.tags is not None else None
            split.ids = split.ids[:limit] if split.ids is not None else None
    for note in notes:
        logger.info(note)
    return TaggedData(splits, notes)


def tag_set(data: TaggedData, model_labels: list[str] | None = None) -> list[str]:
    """The tag set: a trained model's own (`model_labels`), else IOB2 tags of the types in the training data
    (or the validation data, without training). Every tag of every split must be in it.

    Training data without a single entity is an error: a tagger learns nothing from it.
    """
    if model_labels is not None:
        labels, origin = list(model_labels), "the model's tags"
    else:
        source = data.splits.get("train") or data.splits.get("validation")
        if source is None or source.tags is None:
            raise DataError("no tags found: give tagged training data, or evaluate a trained model (--do_train False "
                            "--model OUTPUT_DIR), whose tags are in its config")
        labels, origin = label_list_for(source.tags), "the training tags"
        if "train" in data.splits and labels == ["O"]:
            raise DataError(f"{source.source}: every token is tagged O; a tagger needs entity tags to learn anything")
    known = set(labels)
    for split in data.splits.values():
        for sentence_tags, sentence_lines in zip(split.tags or [], split.lines):
            for tag, line in zip(sentence_tags, sentence_lines):
                if tag not in known:
                    raise DataError(f"{split.source}, line {line}: tag {tag!r} is not in {origin}")
    return labels
