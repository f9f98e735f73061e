"""The benchmark folders under `--data_dir` (default ../shared/data), read in place: one loader per layout.

Text classification: `sst2` (GLUE TSV), `ag_news` (headerless CSV, class names in classes.txt, HTML
escapes undone), `chnsenticorp` (ERNIE's TSV), `bbc_news` (long articles, CSV); GLUE `cola`, and the
sentence pairs `mrpc`, `rte` and `stsb` (a score: regression); CLUE `ocnli` (Chinese sentence pairs). Tagged sentences: `conll2003`, `cluener2020` (file names
in TAGGED_BENCHMARK_FILES, read by the recipe's reader).
"""

import html
import re
from pathlib import Path

from common.data.errors import DataError
from common.data.fetch import COMMAND, DEFAULT_DATA_DIR, ensure_benchmark, inside_checkout
from common.data.tables import Split, TextData, check_file, open_text, read_table


def benchmark_folder(data_dir: str | None, benchmark: str) -> Path:
    """The benchmark's folder: under --data_dir (or $DATA_DIR), or else under ../shared/data beside the
    repository, where what is missing is first fetched from its pinned source (common/data/fetch.py)."""
    if not data_dir and not inside_checkout():
        raise DataError(f"--benchmark {benchmark} without --data_dir: this recipe runs outside the project's checkout, "
                        f"so name the data folder with --data_dir DIR (or DATA_DIR); `{COMMAND} --data_dir DIR` "
                        "fills one")
    if not data_dir:
        ensure_benchmark(DEFAULT_DATA_DIR, benchmark, ours=True)
        return DEFAULT_DATA_DIR.resolve() / benchmark
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"--data_dir {data_dir}: no such folder (to fetch the benchmarks into it: "
                        f"`{COMMAND} --data_dir {data_dir}`)")
    if not (root / benchmark).is_dir():
        ensure_benchmark(root, benchmark, ours=False)  # names the command that fetches it
    return root.resolve() / benchmark


def _with_label_names(split: Split, names: dict[str, str]) -> Split:
    unknown = ~split.frame["label"].isin(list(names))
    if unknown.any():
        i = unknown.idxmax()
        raise DataError(f"{split.where(i)}: label {split.frame.at[i, 'label']!r} is not one of {sorted(names)}")
    split.frame["label"] = split.frame["label"].map(names)
    return split


def load_sst2(folder: Path) -> TextData:
    """GLUE SST-2: `sentence<TAB>label` (0 negative, 1 positive); the test file has no labels."""
    names = {"0": "negative", "1": "positive"}
    splits = {}
    for split, file in (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv")):
        if (folder / file).exists():
            s = read_table(folder / file)
            s.frame = s.frame.rename(columns={"sentence": "text"})
            splits[split] = _with_label_names(s, names) if "label" in s.frame else s
    return TextData(splits, "text", "label", label_names=list(names.values()))


def load_chnsenticorp(folder: Path) -> TextData:
    """ChnSentiCorp as released with ERNIE: `label<TAB>text_a`, all three splits labelled."""
    names = {"0": "negative", "1": "positive"}
    splits = {}
    for split, file in (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv")):
        s = read_table(folder / file)
        s.frame = s.frame.rename(columns={"text_a": "text"})
        splits[split] = _with_label_names(s, names)
    return TextData(splits, "text", "label", label_names=list(names.values()))


def clean_ag_news(text: str) -> str:
    """AG News keeps '\\' for line breaks and HTML entities with the '&' turned into a space (' #36;')."""
    text = text.replace("\\", " ")
    def entity(match):
        decoded = html.unescape(f"&{match.group(1)};")
        return match.group(0) if decoded.startswith("&") and len(decoded) > 1 else decoded

    text = re.sub(r" (#\d+|[a-z]+);", entity, text)
    return re.sub(r"\s+", " ", text).strip()


def load_ag_news(folder: Path) -> TextData:
    """AG News: headerless `class,title,description`; classes 1-4 named in classes.txt.

    Only the 7,600-row test file is shipped here, so it is the training pool that the recipe splits.
    Any of train.csv / test.csv present is used as such.
    """
    class_names = open_text(check_file(folder / "classes.txt")).read().split()
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
    return TextData(splits, "text", "label", label_names=class_names, notes=notes)


def load_bbc_news(folder: Path) -> TextData:
    """BBC News: `text,category` CSVs (train, val, test), long articles in 5 topics."""
    splits = {}
    for split, file in (("train", "train.csv"), ("validation", "val.csv"), ("test", "test.csv")):
        s = read_table(folder / file)
        s.frame = s.frame.rename(columns={"category": "label"})
        splits[split] = s
    return TextData(splits, "text", "label")


def _glue_splits(folder: Path, header: bool = True, names: list[str] | None = None) -> dict[str, Split]:
    """GLUE's train.tsv and dev.tsv (its test sets have no labels, and are not here)."""
    return {split: read_table(folder / file, header=header, names=names)
            for split, file in (("train", "train.tsv"), ("validation", "dev.tsv"))}


def load_cola(folder: Path) -> TextData:
    """GLUE CoLA: headerless `source<TAB>label<TAB>original_label<TAB>sentence`; 1 acceptable, 0 not."""
    names = {"0": "unacceptable", "1": "acceptable"}
    splits = _glue_splits(folder, header=False, names=["source", "label", "original_label", "sentence"])
    splits = {name: _with_label_names(split, names) for name, split in splits.items()}
    return TextData(splits, "sentence", "label", label_names=list(names.values()))


def load_mrpc(folder: Path) -> TextData:
    """GLUE MRPC: `Quality<TAB>#1 ID<TAB>#2 ID<TAB>#1 String<TAB>#2 String` (a byte-order mark first); 1 paraphrase."""
    names = {"0": "not_equivalent", "1": "equivalent"}
    splits = _glue_splits(folder)
    for split in splits.values():
        split.frame = split.frame.rename(columns={"Quality": "label", "#1 String": "sentence1", "#2 String": "sentence2"})
    splits = {name: _with_label_names(split, names) for name, split in splits.items()}
    return TextData(splits, "sentence1", "label", "sentence2", label_names=list(names.values()))


def load_rte(folder: Path) -> TextData:
    """GLUE RTE: `index<TAB>sentence1<TAB>sentence2<TAB>label`, labels entailment / not_entailment."""
    return TextData(_glue_splits(folder), "sentence1", "label", "sentence2",
                    label_names=["entailment", "not_entailment"])


def load_stsb(folder: Path) -> TextData:
    """GLUE STS-B: 10 columns, the pair in `sentence1`/`sentence2`, a similarity `score` from 0 to 5 (regression)."""
    return TextData(_glue_splits(folder), "sentence1", "score", "sentence2", regression=True)


def load_ocnli(folder: Path) -> TextData:
    """CLUE OCNLI: JSON lines with `sentence1`, `sentence2` and `label` (entailment, neutral, contradiction). Rows
    labelled `-` (the annotators had no majority) are left out, as CLUE does, and each is named in the notes."""
    splits, notes = {}, []
    for split, file in (("train", "train.50k.json"), ("validation", "dev.json")):
        s = read_table(folder / file)
        no_label = s.frame["label"] == "-"
        if no_label.any():
            lines = s.frame.loc[no_label, "_line"].tolist()
            notes.append(f"{split}: left out {len(lines)} row(s) of {s.source} labelled '-' (no majority label, as "
                         f"CLUE leaves them out): lines {', '.join(map(str, lines))}")
            s.frame = s.frame[~no_label]
        splits[split] = s
    return TextData(splits, "sentence1", "label", "sentence2", label_names=["entailment", "neutral", "contradiction"],
                    notes=notes)


BENCHMARKS = {"sst2": load_sst2, "ag_news": load_ag_news, "chnsenticorp": load_chnsenticorp, "bbc_news": load_bbc_news,
              "cola": load_cola, "mrpc": load_mrpc, "rte": load_rte, "stsb": load_stsb, "ocnli": load_ocnli}


TAGGED_BENCHMARK_FILES = {
    "conll2003": {"train": "train.txt", "validation": "valid.txt", "test": "test.txt"},
    "cluener2020": {"train": "train.json", "validation": "dev.json", "test": "test.json"},
}
