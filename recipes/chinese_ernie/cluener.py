"""Character-level entity data: CLUENER-style span JSON lines and character-per-line BIO files.

Both become a `TaggedSplit` whose tokens are the text's characters (Python code points, which is
what CLUENER's offsets count) with IOB2 tags, so the token-classification code and seqeval apply.
CLUENER labels look like `{"name": {"彭小军": [[0, 2]]}}`: type -> surface -> [[start, end]], with
`end` inclusive. Every span is checked against the text; predictions are written back in that form.
"""

import json
import logging
from collections import defaultdict
from pathlib import Path

from common.data.errors import DataError
from common.data.tables import open_text, require_file
from common.data.tag_schemes import spans_to_tags, tags_to_spans
from common.data.tagged import TaggedSplit
from common.training.output_dir import final_path

logger = logging.getLogger(__name__)


def spans_of(label: dict, text: str, where: str) -> list[tuple[str, int, int]]:
    """[(type, start, end)] from a CLUENER label, each checked against the text."""
    if not isinstance(label, dict):
        raise DataError(f"{where}: 'label' must be an object {{type: {{surface: [[start, end], ...]}}}}")
    spans = []
    for kind, surfaces in label.items():
        if not isinstance(surfaces, dict):
            raise DataError(f"{where}: label {kind!r} must map surface forms to lists of [start, end]")
        for surface, offsets in surfaces.items():
            for pair in offsets if isinstance(offsets, list) else [offsets]:
                if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, int) for x in pair)):
                    raise DataError(f"{where}: {kind} {surface!r}: {pair!r} is not [start, end]")
                start, end = pair
                if not 0 <= start <= end < len(text):
                    raise DataError(f"{where}: {kind} {surface!r} at [{start}, {end}] is outside the text "
                                    f"({len(text)} characters)")
                if text[start:end + 1] != surface:
                    raise DataError(f"{where}: {kind} at [{start}, {end}] is {text[start:end + 1]!r} in the text, "
                                    f"but the label says {surface!r}")
                spans.append((kind, start, end))
    return spans


def keep_longest(spans: list) -> tuple[list, list]:
    """Resolve overlaps: keep the longest spans that do not overlap a kept one; also return the dropped ones."""
    kept, dropped = [], []
    for span in sorted(spans, key=lambda s: (s[1] - s[2], s[1])):
        (dropped if any(span[1] <= k[2] and k[1] <= span[2] for k in kept) else kept).append(span)
    return kept, dropped


def read_span_jsonl(path, overlapping_spans: str = "error", encoding: str = "utf-8") -> TaggedSplit:
    """CLUENER JSON lines: {"text", "label"?, "id"?}; without labels (a test file) the split is unlabelled.

    Overlapping (nested) spans are an error, or with `overlapping_spans="keep_longest"` the shorter
    one is dropped, and the log says which (CLUENER's training file nests one company in a book title).
    """
    path = require_file(path)
    texts, tags, lines, ids, dropped = [], [], [], [], []
    with open_text(path, encoding=encoding) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: invalid JSON: {e.msg}") from None
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str) or not text:
                raise DataError(f"{where}: 'text' must be a non-empty string")
            if "label" in record:
                spans = spans_of(record["label"], text, where)
                if overlapping_spans == "keep_longest":
                    spans, lost = keep_longest(spans)
                    dropped += [f"line {number} {span}" for span in lost]
                try:
                    tags.append(spans_to_tags(spans, len(text)))
                except ValueError as e:  # overlapping spans, named by spans_to_tags
                    raise DataError(f"{where}: {e}") from None
            else:
                tags.append(None)
            texts.append(list(text))
            lines.append([number] * len(text))
            ids.append(record.get("id", len(ids)))
    if not texts:
        raise DataError(f"{path}: no texts (empty file)")
    if dropped:
        logger.warning(f"{path}: {len(dropped)} spans inside longer ones dropped (--overlapping_spans keep_longest): "
                       + ", ".join(dropped[:10]))
    labelled = [t is not None for t in tags]
    if any(labelled) and not all(labelled):
        raise DataError(f"{path}, line {lines[labelled.index(False)][0]}: no 'label' (other lines have one)")
    return TaggedSplit(texts, tags if all(labelled) else None, lines, str(path), "cluener", ids)


def read_char_bio(path, encoding: str = "utf-8") -> TaggedSplit:
    """One character per line, `char<TAB>tag` (or space-separated), a blank line between sentences (MSRA layout)."""
    path = require_file(path)
    texts, tags, lines = [], [], []
    chars, char_tags, char_lines = [], [], []
    with open_text(path, encoding=encoding) as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                if chars:
                    texts.append(chars), tags.append(char_tags), lines.append(char_lines)
                    chars, char_tags, char_lines = [], [], []
                continue
            char, separator, tag = line.rpartition("\t") if "\t" in line else line.rpartition(" ")
            if not separator or not tag:
                raise DataError(f"{path}, line {number}: expected a character, a tab and a tag, got {line!r}")
            if len(char) != 1:
                raise DataError(f"{path}, line {number}: {char!r} is not a single character")
            chars.append(char), char_tags.append(tag), char_lines.append(number)
    if chars:
        texts.append(chars), tags.append(char_tags), lines.append(char_lines)
    if not texts:
        raise DataError(f"{path}: no sentences (empty file)")
    return TaggedSplit(texts, tags, lines, str(path), "char_bio")


def read_char_file(path, overlapping_spans: str = "error", encoding: str = "utf-8") -> TaggedSplit:
    """A character-tagged file by its suffix: CLUENER JSON lines of spans, else one character per line with its tag."""
    if Path(path).suffix.lower() in (".json", ".jsonl"):
        return read_span_jsonl(path, overlapping_spans, encoding)
    return read_char_bio(path, encoding)


def cluener_label(text: str, tags: list[str]) -> dict:
    """IOB2 character tags -> CLUENER's {type: {surface: [[start, end], ...]}}."""
    label = defaultdict(lambda: defaultdict(list))
    for kind, start, end in tags_to_spans(tags):
        label[kind][text[start:end + 1]].append([start, end])
    return {kind: dict(surfaces) for kind, surfaces in label.items()}


def write_cluener_predictions(path, split: TaggedSplit, predicted_tags: list[list[str]]) -> Path:
    """One JSON line per input text, in input order: {"id", "text", "label"}, CLUENER's submission format."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as out:
        for i, (chars, tags) in enumerate(zip(split.tokens, predicted_tags)):
            text = "".join(chars)
            record = {"id": split.ids[i] if split.ids else i, "text": text, "label": cluener_label(text, tags)}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    logger.info(f"{len(predicted_tags):,} CLUENER predictions written to {final_path(path)}")
    return path


def span_scores(gold: list[dict], predicted: list[dict]) -> dict:
    """CLUENER's definition: an entity counts when its span and type match exactly. Labels as in the files."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold records but {len(predicted)} predicted")

    def entity_set(labels):
        return {(i, kind, start, end) for i, label in enumerate(labels)
                for kind, surfaces in label.items() for pairs in surfaces.values() for start, end in pairs}

    gold_set, predicted_set = entity_set(gold), entity_set(predicted)
    scores = {}
    for kind in sorted({e[1] for e in gold_set | predicted_set}) + [None]:
        g = {e for e in gold_set if kind is None or e[1] == kind}
        p = {e for e in predicted_set if kind is None or e[1] == kind}
        correct = len(g & p)
        precision = correct / len(p) if p else 0.0
        recall = correct / len(g) if g else 0.0
        f1 = 2 * precision * recall / (precision + recall) if correct else 0.0
        scores[kind or "overall"] = {"precision": precision, "recall": recall, "f1": f1, "number": len(g)}
    return scores
