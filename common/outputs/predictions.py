"""Prediction files, one row or line per input in the input's order: predictions.csv for classification,
the input's own layout for tagged words (CoNLL lines, or JSON lines), and entities.jsonl."""

import json
import logging
from pathlib import Path

import numpy as np

from common.data.tables import TextData
from common.data.tag_schemes import tags_to_spans
from common.evaluation.metrics import decisions, probabilities
from common.training.output_dir import final_path

logger = logging.getLogger(__name__)


def write_classification_predictions(path, raw: TextData, split: str, logits: np.ndarray, label_list: list[str],
                                     multi_label: bool = False, separator: str = "|") -> Path:
    """One CSV row per input row, in the input's order: text, gold label (if known), prediction, probabilities;
    for a regression, the gold and the predicted score."""
    frame = raw.splits[split].frame
    text_columns = [raw.text_column] + ([raw.text_pair_column] if raw.text_pair_column else [])
    out = frame[text_columns].reset_index(drop=True).copy()
    if raw.regression:
        if "labels" in frame:
            out["label"] = frame["labels"].to_numpy()
        out["predicted"] = np.asarray(logits).reshape(len(out), -1)[:, 0].round(6)
        return _write(out, path)
    chosen = decisions(logits, multi_label)
    names = np.array(label_list)
    if "labels" in frame:
        gold = np.array(frame["labels"].tolist())
        out["label"] = [separator.join(names[row > 0]) for row in gold] if multi_label else names[gold]
    out["predicted"] = [separator.join(names[row > 0]) for row in chosen] if multi_label else names[chosen]
    for name, column in zip(label_list, probabilities(logits, multi_label).T):
        out[f"p({name})"] = column.round(6)
    return _write(out, path)


def _write(out, path) -> Path:
    path = Path(path)
    out.to_csv(path, index=False)
    logger.info(f"{len(out):,} predictions written to {final_path(path)}")
    return path


def write_tagged_predictions(output_dir, split, predicted_tags: list[list[str]]) -> Path:
    """Word-level predictions in the input's own layout.

    CoNLL input: every line of the input file, with the predicted tag appended to each token line
    (-DOCSTART- and blank lines kept). JSON-lines or Hub input: one JSON object per sentence with
    `tokens`, the gold `tags` if known, and `predicted`.
    """
    output_dir = Path(output_dir)
    if split.format == "conll":
        predicted_at = {line: tag for lines, tags in zip(split.lines, predicted_tags) for line, tag in zip(lines, tags)}
        path = output_dir / "predictions.conll"
        with open(split.source, encoding="utf-8") as source, open(path, "w", encoding="utf-8") as out:
            for number, line in enumerate(source, start=1):
                line = line.rstrip("\n")
                out.write(f"{line} {predicted_at[number]}\n" if number in predicted_at else f"{line}\n")
    else:
        path = output_dir / "predictions.jsonl"
        with open(path, "w", encoding="utf-8") as out:
            for i, (tokens, predicted) in enumerate(zip(split.tokens, predicted_tags)):
                record = {"tokens": tokens, **({"tags": split.tags[i]} if split.tags else {}), "predicted": predicted}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    logger.info(f"{sum(map(len, predicted_tags)):,} word predictions in {len(predicted_tags):,} sentences written to {final_path(path)}")
    return path


def write_entities(path, split, predicted_tags: list[list[str]]) -> Path:
    """One JSON line per predicted entity: sentence id, first and last word (inclusive), type, text."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as out:
        for sentence, (tokens, tags) in enumerate(zip(split.tokens, predicted_tags)):
            for kind, start, end in tags_to_spans(tags):
                record = {"sentence": sentence, "start": start, "end": end, "type": kind,
                          "text": " ".join(tokens[start:end + 1])}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    logger.info(f"Entities written to {final_path(path)}")
    return path
