"""Reading and checking labelled text: local files, pandas DataFrames, Hub datasets, benchmark folders.

Every source becomes one pandas DataFrame per split, with a `_line` column that remembers where each
row came from, so that any error can name the file and line. Nothing is dropped silently: a bad row
stops the run with a message, and every subset or split taken is logged.
"""

import html
import json
import logging
import os
import re
import csv
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent


class DataError(ValueError):
    """Bad input data; the message names the file and line (or row)."""


@dataclass
class Split:
    """One split's rows, and where they came from (for messages and the results file)."""

    frame: pd.DataFrame
    source: str
    unit: str = "line"  # how `_line` counts: file lines, or rows of a DataFrame / Hub dataset

    def where(self, index) -> str:
        return f"{self.source}, {self.unit} {self.frame.at[index, '_line']}"


@dataclass
class RawData:
    splits: dict[str, Split]
    text_column: str
    label_column: str
    text_pair_column: str | None = None
    label_names: list[str] | None = None  # fixed label order, when the source defines one
    notes: list[str] = field(default_factory=list)

    def sources(self) -> dict[str, str]:
        return {name: split.source for name, split in self.splits.items()}

    def sizes(self) -> dict[str, int]:
        return {name: len(split.frame) for name, split in self.splits.items()}


# ---------------------------------------------------------------------------------------- files


def require_file(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def _check_file(path) -> Path:
    path = require_file(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    return path


def read_table(path, header: bool = True, names: list[str] | None = None, sep: str | None = None) -> Split:
    """Read a CSV, TSV, JSON or JSON-lines file into a Split, checking every row's shape."""
    path = _check_file(path)
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        return _read_json(path)
    if sep is None:
        sep = "\t" if suffix in (".tsv", ".tab") else ","
    # The csv module (not pandas) reads the rows: pandas pads a short row with empty fields, which
    # would hide it, and csv.reader knows each record's real line even when quoted fields span lines.
    with open(path, newline="", encoding="utf-8") as f:
        # GLUE-style TSV files are not quoted and hold bare '"' characters
        reader = csv.reader(f, delimiter=sep, quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL)
        rows, lines = [], []
        for row in reader:
            if row:  # blank lines separate nothing here
                rows.append(row)
                lines.append(reader.line_num)
    if header:
        names, rows, lines = rows[0], rows[1:], lines[1:]
    if not rows:
        raise DataError(f"{path}: no data rows" + (" (only a header)" if header else ""))
    n_fields = len(names)
    for row, line in zip(rows, lines):
        if len(row) != n_fields:
            raise DataError(f"{path}, line {line}: expected {n_fields} fields, found {len(row)}")
    frame = pd.DataFrame(rows, columns=names)
    frame["_line"] = lines
    return Split(frame, str(path))


def _read_json(path: Path) -> Split:
    """A JSON array of objects, or JSON lines (one object per line; blank lines allowed)."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {e.lineno}: invalid JSON: {e.msg}") from None
        lines = list(range(1, len(records) + 1))
        unit = "record"
    else:
        records, lines, unit = [], [], "line"
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {number}: invalid JSON: {e.msg}") from None
            lines.append(number)
    for record, number in zip(records, lines):
        if not isinstance(record, dict):
            raise DataError(f"{path}, {unit} {number}: expected a JSON object, found {type(record).__name__}")
    if not records:
        raise DataError(f"{path}: no records")
    frame = pd.DataFrame.from_records(records)
    frame["_line"] = lines
    return Split(frame, str(path), unit)


def from_dataframe(frame: pd.DataFrame, name: str) -> Split:
    frame = frame.reset_index(drop=True).copy()
    frame["_line"] = range(1, len(frame) + 1)
    return Split(frame, name, "row")


# ----------------------------------------------------------------------------------- benchmarks


def resolve_data_dir(data_dir: str | None) -> Path:
    for candidate in (data_dir, os.environ.get("DATA_DIR"), REPO_ROOT.parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    raise DataError(f"data directory not found: {data_dir or os.environ.get('DATA_DIR') or '../shared/data'} "
                    "(set --data_dir or DATA_DIR)")


def _with_label_names(split: Split, names: dict[str, str]) -> Split:
    unknown = ~split.frame["label"].isin(list(names))
    if unknown.any():
        i = unknown.idxmax()
        raise DataError(f"{split.where(i)}: label {split.frame.at[i, 'label']!r} is not one of {sorted(names)}")
    split.frame["label"] = split.frame["label"].map(names)
    return split


def load_sst2(folder: Path) -> RawData:
    """GLUE SST-2: `sentence<TAB>label` (0 negative, 1 positive); the test file has no labels."""
    names = {"0": "negative", "1": "positive"}
    splits = {}
    for split, file in (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv")):
        if (folder / file).exists():
            s = read_table(folder / file)
            s.frame = s.frame.rename(columns={"sentence": "text"})
            splits[split] = _with_label_names(s, names) if "label" in s.frame else s
    return RawData(splits, "text", "label", label_names=list(names.values()))


def load_chnsenticorp(folder: Path) -> RawData:
    """ChnSentiCorp as released with ERNIE: `label<TAB>text_a`, all three splits labelled."""
    names = {"0": "negative", "1": "positive"}
    splits = {}
    for split, file in (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv")):
        s = read_table(folder / file)
        s.frame = s.frame.rename(columns={"text_a": "text"})
        splits[split] = _with_label_names(s, names)
    return RawData(splits, "text", "label", label_names=list(names.values()))


def clean_ag_news(text: str) -> str:
    """AG News keeps '\\' for line breaks and HTML entities with the '&' turned into a space (' #36;')."""
    text = text.replace("\\", " ")
    def entity(match):
        decoded = html.unescape(f"&{match.group(1)};")
        return match.group(0) if decoded.startswith("&") and len(decoded) > 1 else decoded

    text = re.sub(r" (#\d+|[a-z]+);", entity, text)
    return re.sub(r"\s+", " ", text).strip()


def load_ag_news(folder: Path) -> RawData:
    """AG News: headerless `class,title,description`; classes 1-4 named in classes.txt.

    Only the 7,600-row test file is shipped here, so it is the training pool that the recipe splits.
    Any of train.csv / test.csv present is used as such.
    """
    class_names = _check_file(folder / "classes.txt").read_text(encoding="utf-8").split()
    names = {str(i): name for i, name in enumerate(class_names, start=1)}
    files = {"train": folder / "train.csv", "test": folder / "test.csv"}
    splits = {}
    for split, path in files.items():
        if path.exists():
            s = read_table(path, header=False, names=["label", "title", "description"])
            s.frame["text"] = (s.frame["title"] + ". " + s.frame["description"]).map(clean_ag_news)
            splits[split] = _with_label_names(s, names)
    notes = []
    if "train" not in splits:
        splits = {"train": splits["test"]}
        notes.append(f"{files['test']} is the only AG News file: it is split into train/validation/test")
    return RawData(splits, "text", "label", label_names=class_names, notes=notes)


BENCHMARKS = {"sst2": load_sst2, "ag_news": load_ag_news, "chnsenticorp": load_chnsenticorp}


# -------------------------------------------------------------------------------- entry points


HUB_SPLITS = {"train": "train", "validation": "validation", "dev": "validation", "valid": "validation", "test": "test"}


def hub_splits(name: str, config: str | None, notes: list[str]) -> dict:
    """`load_dataset(name, config)` as {our split name: (the Hub's split name, Dataset)}; other splits are noted."""
    import datasets

    splits = {}
    for key, dataset in datasets.load_dataset(name, config).items():
        if key in HUB_SPLITS:
            splits[HUB_SPLITS[key]] = (key, dataset)
        else:
            notes.append(f"{name}: split '{key}' not used (only train, validation/dev and test are)")
    return splits


def load_hub_dataset(name: str, config: str | None, notes: list[str]) -> tuple[dict, list | None]:
    import datasets

    loaded = hub_splits(name, config, notes)
    splits = {split: from_dataframe(dataset.to_pandas(), f"{name} [{key}]") for split, (key, dataset) in loaded.items()}
    first = next(dataset for _, dataset in loaded.values())
    label_feature = next((f for f in first.features.values() if isinstance(f, datasets.ClassLabel)), None)
    return splits, (label_feature.names if label_feature else None)


def load_raw_data(args, frames: dict[str, pd.DataFrame] | None = None) -> RawData:
    """Load the splits named by DataArguments (or given as DataFrames), before any checking."""
    if frames:
        splits = {k: from_dataframe(v, f"DataFrame '{k}'") for k, v in frames.items()}
        return RawData(splits, args.text_column, args.label_column, args.text_pair_column)
    # Files given on the command line win over a config's --benchmark: the config only sets a default.
    files = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
    if any(files.values()):
        splits = {k: read_table(v) for k, v in files.items() if v}
        return RawData(splits, args.text_column, args.label_column, args.text_pair_column)
    if args.dataset_name:
        notes = []
        splits, names = load_hub_dataset(args.dataset_name, args.dataset_config_name, notes)
        raw = RawData(splits, args.text_column, args.label_column, args.text_pair_column, notes=notes)
        if names:
            for split in splits.values():
                frame = split.frame
                if args.label_column in frame and pd.api.types.is_integer_dtype(frame[args.label_column]):
                    # -1 marks an unlabelled row (GLUE test sets)
                    frame[args.label_column] = frame[args.label_column].map(lambda v: names[v] if v >= 0 else None)
            raw.label_names = names
        return raw
    if args.benchmark:
        if args.benchmark not in BENCHMARKS:
            raise DataError(f"unknown benchmark '{args.benchmark}' (known: {', '.join(BENCHMARKS)})")
        folder = resolve_data_dir(args.data_dir) / args.benchmark
        return BENCHMARKS[args.benchmark](folder)
    raise DataError("no data given: set --train_file/--validation_file/--test_file, --dataset_name or --benchmark")


def check_columns(raw: RawData, split_name: str, split: Split, multi_label: bool = False) -> None:
    """Require the text column(s) and (outside test) the label column; refuse empty texts and missing labels.

    In multi-label data an empty label string or list is a row with no labels; a null is still missing.
    """
    frame = split.frame
    needed = [raw.text_column] + ([raw.text_pair_column] if raw.text_pair_column else [])
    if split_name != "test" or raw.label_column in frame:
        needed.append(raw.label_column)
    found = [c for c in frame.columns if c != "_line"]
    for column in needed:
        if column not in frame:
            raise DataError(f"{split.source}: no column '{column}' (columns found: {', '.join(map(str, found))})")
    for column in needed[: 2 if raw.text_pair_column else 1]:
        text = frame[column]
        bad = text.isna() | ~text.map(lambda t: isinstance(t, str) and bool(t.strip()))
        if bad.any():
            i = bad.idxmax()
            raise DataError(f"{split.where(i)}: empty text in column '{column}'")
    if raw.label_column in frame:
        label = frame[raw.label_column]
        missing = label.isna() if multi_label else label.isna() | label.map(lambda v: isinstance(v, str) and not v.strip())
        if split_name == "test" and missing.all():
            return  # an unlabelled test set, written with an empty label column
        if missing.any():
            i = missing.idxmax()
            raise DataError(f"{split.where(i)}: missing label in column '{raw.label_column}'")


def _stratify_or_none(labels: pd.Series, what: str, notes: list[str]):
    counts = labels.value_counts()
    if labels.map(lambda v: isinstance(v, (list, tuple))).any() or counts.min() < 2:
        notes.append(f"{what}: not stratified (multi-label rows, or a label seen only once)")
        return None
    return labels


def split_off(raw: RawData, validation_split: float, test_split: float, seed: int) -> None:
    """Hold out a stratified, seeded validation (and test) set from train when the data has none."""
    train = raw.splits["train"]
    frame = train.frame
    holdout = {}
    if "validation" not in raw.splits and validation_split > 0:
        holdout["validation"] = round(validation_split * len(frame))
    if "test" not in raw.splits and test_split > 0:
        holdout["test"] = round(test_split * len(frame))
    if not holdout:
        return
    labels = frame[raw.label_column].map(lambda v: tuple(v) if isinstance(v, list) else v)
    stratify = _stratify_or_none(labels, "held-out split", raw.notes)
    rest, held = train_test_split(frame, test_size=sum(holdout.values()), random_state=seed, stratify=stratify)
    if len(holdout) == 2:
        stratify = _stratify_or_none(labels.loc[held.index], "validation/test split", raw.notes)
        held_val, held_test = train_test_split(held, test_size=holdout["test"], random_state=seed, stratify=stratify)
        parts = {"validation": held_val, "test": held_test}
    else:
        parts = {next(iter(holdout)): held}
    # keep file order inside each split, so outputs follow the input's order
    raw.splits["train"] = Split(rest.sort_index(), train.source, train.unit)
    for name, part in parts.items():
        raw.splits[name] = Split(part.sort_index(), train.source, train.unit)
    sizes = ", ".join(f"{name} {len(raw.splits[name].frame):,}" for name in ("train", *parts))
    raw.notes.append(f"split {train.source} (seed {seed}{', stratified by label' if stratify is not None else ''}): {sizes}")


def take_first(raw: RawData, limits: dict[str, int | None]) -> None:
    for name, limit in limits.items():
        if limit is not None and name in raw.splits and limit < len(raw.splits[name].frame):
            split = raw.splits[name]
            raw.notes.append(f"{name}: kept the first {limit:,} of {len(split.frame):,} rows of {split.source}")
            split.frame = split.frame.iloc[:limit]


def load_data(args, seed: int, frames: dict[str, pd.DataFrame] | None = None) -> RawData:
    """Load, check and split the data named by DataArguments. Every note is also logged."""
    raw = load_raw_data(args, frames)
    if "train" not in raw.splits and "validation" not in raw.splits and "test" not in raw.splits:
        raise DataError(f"no train, validation or test split found (found: {', '.join(raw.splits)})")
    for name, split in raw.splits.items():
        check_columns(raw, name, split, args.multi_label)
    if "train" in raw.splits:
        split_off(raw, args.validation_split, args.test_split, seed)
    take_first(raw, {"train": args.max_train_samples, "validation": args.max_eval_samples,
                     "test": args.max_predict_samples})
    for note in raw.notes:
        logger.info(note)
    return raw
