"""Labelled text for classification: every source becomes one pandas DataFrame per split, checked and split.

Sources: local files (common.data.tables), DataFrames, Hub datasets (common.data.hub) and benchmark
folders (common.data.benchmarks). Nothing is dropped silently: a bad row stops the run with a
message naming its file and line, and every subset or split taken is logged.
"""

import logging
import math
import unicodedata

import pandas as pd
from sklearn.model_selection import train_test_split

from common.data.benchmarks import BENCHMARKS, benchmark_folder
from common.data.errors import DataError
from common.data.hub import load_hub_dataset
from common.data.labels import decide_regression, missing_label
from common.data.tables import Split, TextData, from_dataframe, read_table

logger = logging.getLogger(__name__)


def load_raw_data(args, frames: dict[str, pd.DataFrame] | None = None) -> TextData:
    """Load the splits named by TextDataArguments (or given as DataFrames), before any checking."""
    if frames:
        splits = {k: from_dataframe(v, f"DataFrame '{k}'") for k, v in frames.items()}
        return TextData(splits, args.text_column, args.label_column, args.text_pair_column)
    # Files given on the command line win over a config's --benchmark: the config only sets a default.
    files = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
    if any(files.values()):
        splits = {k: read_table(v, encoding=args.encoding, skip_bad_rows=args.skip_bad_rows)
                  for k, v in files.items() if v}
        return TextData(splits, args.text_column, args.label_column, args.text_pair_column)
    if args.dataset_name:
        notes = []
        splits, names = load_hub_dataset(args.dataset_name, args.dataset_config_name, notes)
        raw = TextData(splits, args.text_column, args.label_column, args.text_pair_column, notes=notes)
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
        folder = benchmark_folder(args.data_dir, args.benchmark)
        return BENCHMARKS[args.benchmark](folder)
    raise DataError("no data given: set --train_file/--validation_file/--test_file, --dataset_name or --benchmark")


# Characters that show nothing and that str.strip() keeps: zero-width spaces and joiners, word joiner,
# byte-order mark, soft hyphen, Hangul fillers, braille blank
INVISIBLE = set("\u200b\u200c\u200d\u2060\ufeff\u00ad\u115f\u1160\u3164\uffa0\u2800\u180e")


def text_problem(value, column: str) -> str | None:
    """What is wrong with a text value, or None: missing, not a string, or nothing visible in it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"empty text in column '{column}'"
    if not isinstance(value, str):
        kind = "a number" if isinstance(value, (bool, int, float)) else f"a {type(value).__name__}"
        return f"the text in column '{column}' is {kind} ({str(value)[:40]}), not a string: quote it in the JSON"
    if not value.strip():
        return f"empty text in column '{column}'"
    if all(c.isspace() or c in INVISIBLE or unicodedata.category(c) in ("Cc", "Cf") for c in value):
        shown = ", ".join(sorted({f"U+{ord(c):04X}" for c in value if not c.isspace()}))
        return f"empty text in column '{column}' (only invisible characters: {shown})"
    return None


def row_problems(raw: TextData, split_name: str, split: Split, multi_label: bool = False) -> pd.Series:
    """Each row's first problem (empty text, missing label, a label over several lines), or None."""
    frame = split.frame
    problems = pd.Series(None, index=frame.index, dtype=object)

    def flag(bad: pd.Series, problem) -> None:
        new = bad & problems.isna()
        problems[new] = [problem(i) if callable(problem) else problem for i in new[new].index]

    for column in [raw.text_column] + ([raw.text_pair_column] if raw.text_pair_column else []):
        text_problems = frame[column].map(lambda value, c=column: text_problem(value, c))
        flag(text_problems.notna(), lambda i, found=text_problems: found[i])
    if raw.label_column in frame:
        label = frame[raw.label_column]
        missing = label.map(lambda v: missing_label(v, multi_label))
        if not (split_name == "test" and missing.all()):  # all missing: an unlabelled test set
            flag(missing, f"missing label in column '{raw.label_column}'")
        # a quote opened before the label and closed rows later: those rows became one label
        flag(label.map(lambda v: isinstance(v, str) and "\n" in v),
             lambda i: f"the label in column '{raw.label_column}' runs over several lines ({label[i][:40]!r}...): "
                       "is a quote left open?")
    return problems


def check_columns(raw: TextData, split_name: str, split: Split, multi_label: bool = False,
                  skip_bad_rows: bool = False) -> None:
    """Require the text column(s) and (outside test) the label column; refuse empty texts and missing labels,
    or with `skip_bad_rows` leave those rows out, recorded in `split.skipped`.

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
    problems = row_problems(raw, split_name, split, multi_label)
    for i in problems[problems.notna()].index:
        split.reject(frame.at[i, "_line"], problems[i], skip_bad_rows)
    split.frame = frame[problems.isna()]


def _stratify_or_none(labels: pd.Series, held: int, what: str, notes: list[str]):
    """The labels to stratify a split of `held` rows by, or None (and a note saying why) where it cannot be."""
    if labels.map(lambda v: isinstance(v, (list, tuple))).any():
        notes.append(f"{what}: not stratified (multi-label rows)")
        return None
    labels = labels.map(lambda v: str(v).strip())  # numbers and names mixed in one column still compare
    counts = labels.value_counts()
    if counts.min() < 2:
        notes.append(f"{what}: not stratified (label {counts.idxmin()!r} is seen only once)")
        return None
    if min(held, len(labels) - held) < len(counts):
        notes.append(f"{what}: not stratified ({held:,} of {len(labels):,} rows held out, and {len(counts)} labels "
                     "could not all be on both sides)")
        return None
    return labels


def _holdout_size(fraction: float, rows: int, flag: str, source: str) -> int:
    size = round(fraction * rows)
    if size == 0:
        raise DataError(f"{source}: {flag} {fraction} of its {rows:,} rows holds out none; give a larger {flag}, "
                        "more rows, or the split as a file")
    return size


def split_off(raw: TextData, validation_split: float, test_split: float, seed: int) -> None:
    """Hold out a stratified, seeded validation (and test) set from train when the data has none."""
    train = raw.splits["train"]
    frame = train.frame
    holdout = {}
    if "validation" not in raw.splits and validation_split > 0:
        holdout["validation"] = _holdout_size(validation_split, len(frame), "--validation_split", train.source)
    if "test" not in raw.splits and test_split > 0:
        holdout["test"] = _holdout_size(test_split, len(frame), "--test_split", train.source)
    if not holdout:
        return
    if sum(holdout.values()) >= len(frame):
        raise DataError(f"{train.source}: holding out {sum(holdout.values()):,} of its {len(frame):,} rows leaves none "
                        "to train on; give more rows, or the validation and test data as files")
    labels = frame[raw.label_column].map(lambda v: tuple(v) if isinstance(v, list) else v)
    by_label = not raw.regression  # a score has no classes to keep in proportion
    stratify = _stratify_or_none(labels, sum(holdout.values()), "held-out split", raw.notes) if by_label else None
    rest, held = train_test_split(frame, test_size=sum(holdout.values()), random_state=seed, stratify=stratify)
    if len(holdout) == 2:
        stratify = _stratify_or_none(labels.loc[held.index], holdout["test"], "validation/test split",
                                     raw.notes) if by_label else None
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


def take_first(raw: TextData, limits: dict[str, int | None]) -> None:
    """Keep the first N rows of the splits given a limit (--max_*_samples), and note it."""
    for name, limit in limits.items():
        if limit is not None and name in raw.splits and limit < len(raw.splits[name].frame):
            split = raw.splits[name]
            raw.notes.append(f"{name}: kept the first {limit:,} of {len(split.frame):,} rows of {split.source}")
            split.frame = split.frame.iloc[:limit]


def report_skipped(raw: TextData, name: str, split: Split) -> None:
    """Rows left out by --skip_bad_rows: in the notes (log, all_results.json, model card), every one by line."""
    skipped = sorted(split.skipped, key=lambda row: row["line"])
    raw.skipped[name] = skipped
    listed = "; ".join(f"{split.unit} {row['line']}: {row['problem']}" for row in skipped)
    raw.notes.append(f"{name}: skipped {len(skipped):,} bad row(s) of {split.source} (--skip_bad_rows), "
                     f"{len(split.frame):,} kept: {listed}")
    if split.frame.empty:
        raise DataError(f"{split.source}: every row was skipped as bad ({len(skipped):,}); nothing is left to use")


def load_text_data(args, seed: int, frames: dict[str, pd.DataFrame] | None = None) -> TextData:
    """Load, check and split the data named by TextDataArguments. Every note is also logged."""
    raw = load_raw_data(args, frames)
    if "train" not in raw.splits and "validation" not in raw.splits and "test" not in raw.splits:
        raise DataError(f"no train, validation or test split found (found: {', '.join(raw.splits)})")
    for name, split in raw.splits.items():
        check_columns(raw, name, split, args.multi_label, args.skip_bad_rows)
        if split.skipped:
            report_skipped(raw, name, split)
    decide_regression(raw, getattr(args, "regression", None), args.multi_label)
    if "train" in raw.splits:
        split_off(raw, args.validation_split, args.test_split, seed)
    take_first(raw, {"train": args.max_train_samples, "validation": args.max_eval_samples,
                     "test": args.max_predict_samples})
    for note in raw.notes:
        (logger.warning if "--skip_bad_rows" in note else logger.info)(note)
    return raw
