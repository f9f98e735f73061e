"""Tabular files (CSV, TSV, JSON, JSON lines) and DataFrames read into a `Split` that remembers each row's line,
and `TextData`, the splits of one labelled-text dataset.

Every row keeps its file line (or DataFrame row) in a `_line` column, so that any error can name it.
"""

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from common.data.errors import DataError

logger = logging.getLogger(__name__)


@dataclass
class Split:
    """One split's rows, and where they came from (for messages and the results file)."""

    frame: pd.DataFrame
    source: str
    unit: str = "line"  # how `_line` counts: file lines, or rows of a DataFrame / Hub dataset
    skipped: list[dict] = field(default_factory=list)  # rows left out by --skip_bad_rows: {"line", "problem"}

    def where(self, index) -> str:
        """'file, line N' of a row, for messages."""
        return f"{self.source}, {self.unit} {self.frame.at[index, '_line']}"

    def reject(self, line: int, problem: str, skip: bool) -> None:
        """A row that fails a check: an error naming it, or with --skip_bad_rows a row left out and recorded."""
        if not skip:
            raise DataError(f"{self.source}, {self.unit} {line}: {problem}")
        self.skipped.append({"line": int(line), "problem": problem})


@dataclass
class TextData:
    """The splits of one labelled-text dataset, the columns to read, and what loading noted about it."""

    splits: dict[str, Split]
    text_column: str
    label_column: str
    text_pair_column: str | None = None
    label_names: list[str] | None = None  # fixed label order, when the source defines one
    label_origin: str = "the training labels"  # where the label set came from, for messages
    regression: bool = False  # the label is a number to predict (a score): one output, MSE, correlations
    notes: list[str] = field(default_factory=list)
    skipped: dict[str, list[dict]] = field(default_factory=dict)  # per split, the rows --skip_bad_rows left out

    def sources(self) -> dict[str, str]:
        """Each split's file (or source), for the results file."""
        return {name: split.source for name, split in self.splits.items()}

    def sizes(self) -> dict[str, int]:
        """Each split's number of rows."""
        return {name: len(split.frame) for name, split in self.splits.items()}


def open_text(path, newline: str | None = None, encoding: str = "utf-8") -> io.StringIO:
    """A text file read like open(); bytes not in `encoding` are a DataError naming the file and line."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise DataError(f"--encoding {encoding}: not a text encoding Python knows (e.g. utf-8, gbk, latin-1)") from None
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not {encoding} text (byte {raw[e.start]:#04x}); give the file's "
                        "encoding with --encoding (e.g. gbk, latin-1), or convert it: iconv -f GBK -t UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark (Excel writes one) is not part of the first column's name
    return io.StringIO(text, newline=newline)


def require_file(path) -> Path:
    """`path` as a Path, or a DataError if there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def check_file(path) -> Path:
    """`path` as a Path, or a DataError if it is missing or empty."""
    path = require_file(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    return path


def read_table(path, header: bool = True, names: list[str] | None = None, sep: str | None = None,
               encoding: str = "utf-8", skip_bad_rows: bool = False) -> Split:
    """Read a CSV, TSV, JSON or JSON-lines file into a Split, checking every row's shape.

    A row of the wrong shape (fields, JSON) is an error, or with `skip_bad_rows` left out and recorded.
    """
    path = check_file(path)
    suffix = path.suffix.lower()
    if suffix in (".json", ".jsonl"):
        return _read_json(path, encoding, skip_bad_rows)
    if sep is None:
        sep = "\t" if suffix in (".tsv", ".tab") else ","
    # The csv module (not pandas) reads the rows: pandas pads a short row with empty fields, which
    # would hide it, and csv.reader knows each record's real line even when quoted fields span lines.
    with open_text(path, newline="", encoding=encoding) as f:
        # GLUE-style TSV files are not quoted and hold bare '"' characters. Strict: a quote left open
        # would otherwise swallow the rest of the file into one field.
        reader = csv.reader(f, delimiter=sep, quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL,
                            strict=True)
        rows, lines, spanning = [], [], []
        start = 1
        try:
            for row in reader:
                if row:  # blank lines separate nothing here
                    rows.append(row)
                    lines.append(start)
                    if reader.line_num > start:
                        spanning.append(start)
                start = reader.line_num + 1
        except csv.Error as e:
            if "unexpected end of data" in str(e):
                raise DataError(f"{path}, line {start}: a quote opened in this row never closes (it would swallow "
                                f"the rest of the file, to line {reader.line_num}, into one field)") from None
            raise DataError(f"{path}, line {reader.line_num}: bad CSV quoting ({e}); a field with quotes in it must be "
                            'quoted whole, its quotes doubled: "said ""hi"""') from None
    if spanning:
        logger.info(f"{path}: {len(spanning)} row(s) hold line breaks inside quotes (first at line {spanning[0]}); "
                    "each is one row, numbered by the line it starts on")
    if header:
        names, rows, lines = rows[0], rows[1:], lines[1:]
    if not rows:
        raise DataError(f"{path}: no data rows" + (" (only a header)" if header else ""))
    split = Split(pd.DataFrame(), str(path))
    n_fields = len(names)
    kept = []
    for row, line in zip(rows, lines):
        if len(row) != n_fields:
            split.reject(line, f"expected {n_fields} fields, found {len(row)}", skip_bad_rows)
        else:
            kept.append((row, line))
    split.frame = pd.DataFrame([row for row, _ in kept], columns=names)
    split.frame["_line"] = [line for _, line in kept]
    return split


def _read_json(path: Path, encoding: str = "utf-8", skip_bad_rows: bool = False) -> Split:
    """A JSON array of objects, or JSON lines (one object per line; blank lines allowed)."""
    text = open_text(path, encoding=encoding).read()
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {e.lineno}: invalid JSON: {e.msg}") from None
        split = Split(pd.DataFrame(), str(path), "record")
        numbered = list(zip(records, range(1, len(records) + 1)))
    else:
        split = Split(pd.DataFrame(), str(path), "line")
        numbered = []
        # lines end at \n, \r\n or \r only, as in a file: str.splitlines() would also cut at \u2028 or \x85,
        # which JSON written with ensure_ascii=False leaves raw inside strings
        for number, line in enumerate(io.StringIO(text, newline=None), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((json.loads(line), number))
            except json.JSONDecodeError as e:
                split.reject(number, f"invalid JSON: {e.msg}", skip_bad_rows)
    if not numbered and not split.skipped:
        raise DataError(f"{path}: no records")
    kept = []
    for record, number in numbered:
        if isinstance(record, dict):
            kept.append((record, number))
        else:
            split.reject(number, f"expected a JSON object, found {type(record).__name__}", skip_bad_rows)
    split.frame = pd.DataFrame.from_records([record for record, _ in kept])
    split.frame["_line"] = [number for _, number in kept]
    return split


def from_dataframe(frame: pd.DataFrame, name: str) -> Split:
    """A DataFrame as a Split whose rows are numbered from 1, for messages."""
    frame = frame.reset_index(drop=True).copy()
    frame["_line"] = range(1, len(frame) + 1)
    return Split(frame, name, "row")
