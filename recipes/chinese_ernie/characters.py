"""Character-level labels on subword models, through the tokenizer's offset mappings.

Chinese BERT/ERNIE tokenizers give each Han character its own token, but keep runs of Latin letters
and digits together as word pieces (`iphone` `##12`), drop spaces and lower-case. The model therefore
sees tokens, while the labels and the predictions belong to characters of the original text:
- a token is trained on the tag of its first character;
- a predicted token tag goes to its first character, and the token's other characters continue it
  (B-X or I-X -> I-X, O -> O);
- a character no token covers (a space, a removed control character) is inside an entity when the
  characters on both sides are (the next one tagged I- of the same type), and O otherwise.
An entity that starts or ends inside a token cannot be represented; such entities are counted and
logged. Texts longer than the model's maximum are windowed as in `common.tokens.word_labels`, at the
tokenizer's word boundaries, each character predicted from the window where it has most context.
"""

import logging
from dataclasses import dataclass

import datasets
import numpy as np
import torch

from common.config.errors import OptionError
from common.data.tag_schemes import parse_tag
from common.tokens.word_labels import IGNORE, Window, continuation_label, log_windowed, plan_windows, windows_of

logger = logging.getLogger(__name__)


@dataclass
class CharFeatures:
    """A split's model inputs (one row per window) and the characters each token stands for."""

    dataset: datasets.Dataset
    windows: list[Window]
    token_chars: list[list[tuple[int, int] | None]]  # per row and position: the characters it predicts, or None
    text_lengths: list[int]

    def select_sentences(self, texts) -> "CharFeatures":
        """The features of these texts only (a cross-validation fold), numbered in the order given."""
        rows, windows = windows_of(self.windows, texts)
        return CharFeatures(self.dataset.select(rows), windows, [self.token_chars[k] for k in rows],
                            [self.text_lengths[t] for t in texts])

    def tags(self, logits: np.ndarray, label_list: list[str], decode=None) -> list[list[str]]:
        """Predicted tag of every character of every text, from the windows' logits (in input order): each
        token's best tag, or `decode(scores)` over the text's tokens (a CRF's Viterbi), spread to characters."""
        tokens = [[] for _ in self.text_lengths]  # per text: (character span, logits) of the tokens that predict it
        for window, chars, row in zip(self.windows, self.token_chars, logits):
            tokens[window.sentence].extend((span, row[position]) for position, span in enumerate(chars)
                                           if span is not None)
        result = []
        for n, text_tokens in zip(self.text_lengths, tokens):
            text_tokens.sort(key=lambda token: token[0])
            if decode is not None and text_tokens:
                ids = decode(torch.from_numpy(np.stack([scores for _, scores in text_tokens])))
            else:
                ids = [int(scores.argmax()) for _, scores in text_tokens]
            text_tags = [None] * n
            for (span, _), i in zip(text_tokens, ids):
                spread_token_tag(text_tags, span, label_list[i])
            result.append(fill_uncovered(text_tags))
        return result


def spread_token_tag(char_tags: list, span: tuple[int, int], tag: str) -> None:
    """Tag the characters of one token's span: B-X on the first, I-X on the rest."""
    start, end = span
    char_tags[start] = tag
    for i in range(start + 1, end):
        char_tags[i] = continuation_label(tag)


def fill_uncovered(char_tags: list[str | None]) -> list[str]:
    """Tags for characters no token covers: inside an entity only when it continues after them."""
    filled = list(char_tags)
    for i, tag in enumerate(filled):
        if tag is None:
            following = next((t for t in char_tags[i + 1:] if t is not None), "O")
            previous_kind = parse_tag(filled[i - 1])[1] if i else None
            prefix, kind = parse_tag(following)
            filled[i] = following if prefix == "I" and kind == previous_kind else "O"
    return filled


def token_label(char_tags: list[str], span: tuple[int, int]) -> tuple[str, bool]:
    """The tag a token is trained on (its first character's), and whether an entity starts or ends inside it."""
    start, end = span
    tag = char_tags[start]
    inside = [parse_tag(t) for t in char_tags[start + 1:end]]
    _, kind = parse_tag(tag)
    return tag, any(prefix == "B" or k != kind for prefix, k in inside)


def encode_char_split(texts: list[str], char_tags: list[list[str]] | None, tokenizer, label2id: dict,
                      max_length: int, stride: int, name: str = "") -> CharFeatures:
    """Tokenize texts into windows of at most `max_length` tokens, with labels and character spans."""
    # 1. the whole texts, for token offsets and the tokenizer's word boundaries (where windows may cut)
    whole = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if stride >= budget:
        raise OptionError(f"--stride {stride} must be smaller than the {budget} tokens a window holds "
                          "(--max_seq_length less the special tokens)")
    windows, window_chars = [], []  # per window: (first char read, one past the last, own chars start, end)
    for i, text in enumerate(texts):
        offsets = whole["offset_mapping"][i]
        if not offsets:  # nothing the tokenizer keeps (only spaces): one empty window, every character O
            windows.append(Window(i, 0, 0, 0, 0)), window_chars.append((0, 0, 0, len(text)))
            continue
        _, words = np.unique(whole.word_ids(i), return_inverse=True)  # consecutive word numbers
        counts = np.bincount(words)
        first_token = np.concatenate([[0], np.cumsum(counts)])
        word_start = [offsets[t][0] for t in first_token[:-1]] + [len(text)]
        for w in plan_windows(i, counts.tolist(), budget, stride):
            windows.append(w)
            read_end = offsets[first_token[w.end] - 1][1]
            own_start = 0 if w.own_start == 0 else word_start[w.own_start]
            own_end = len(text) if w.own_end == len(counts) else word_start[w.own_end]
            window_chars.append((word_start[w.start], read_end, own_start, own_end))

    # 2. the windows themselves, with special tokens; offsets made absolute
    pieces = [texts[w.sentence][start:end] for w, (start, end, _, _) in zip(windows, window_chars)]
    encoded = tokenizer(pieces, truncation=True, max_length=max_length, return_offsets_mapping=True)
    token_chars, labels, split_entities, cut_words = [], [], 0, 0
    for k, (w, (start, read_end, own_start, own_end)) in enumerate(zip(windows, window_chars)):
        chars, row_labels = [], []
        for (s, e), sequence in zip(encoded["offset_mapping"][k], encoded.sequence_ids(k)):
            if sequence is None or e == s:  # special tokens
                chars.append(None), row_labels.append(IGNORE)
                continue
            span = (start + s, start + e)
            chars.append(span if own_start <= span[0] < own_end else None)
            if char_tags is not None:
                tag, splits = token_label(char_tags[w.sentence], span)
                row_labels.append(label2id[tag])
                split_entities += splits and chars[-1] is not None
        last = max((p for p, span in enumerate(chars) if span is not None), default=None)
        if last is not None and chars[last][1] < min(read_end, own_end):
            # a single word longer than a window: its cut-off characters continue its last token's tag
            chars[last] = (chars[last][0], min(read_end, own_end))
            cut_words += 1
        token_chars.append(chars), labels.append(row_labels)
    _check_all_read(texts, windows, token_chars, whole, name)

    columns = {key: encoded[key] for key in encoded.keys() if key != "offset_mapping"}
    if char_tags is not None:
        columns["labels"] = labels
    features = CharFeatures(datasets.Dataset.from_dict(columns), windows, token_chars, [len(t) for t in texts])
    log_windowed(windows, len(texts), max_length, name, "texts")
    if cut_words:
        logger.warning(f"{name}: {cut_words:,} words longer than a window: their last characters take the tag "
                       f"of the last token that fits")
    if split_entities:
        logger.warning(f"{name}: {split_entities:,} tokens hold an entity boundary inside them (e.g. a word piece "
                       f"that runs across it); those entities cannot be predicted exactly")
    return features


def _check_all_read(texts, windows, token_chars, whole, name) -> None:
    """Every character a token covers must be predicted by exactly one window: never drop text silently."""
    predicted = [np.zeros(len(text), dtype=int) for text in texts]
    for w, chars in zip(windows, token_chars):
        for span in chars:
            if span is not None:
                predicted[w.sentence][span[0]:span[1]] += 1
    for i, text in enumerate(texts):
        covered = np.zeros(len(text), dtype=bool)
        for s, e in whole["offset_mapping"][i]:
            covered[s:e] = True
        wrong = np.flatnonzero(covered & (predicted[i] != 1))
        if len(wrong):
            raise RuntimeError(f"{name} text {i}: character {wrong[0]} is predicted {predicted[i][wrong[0]]} times; "
                               f"the tokenizer reads a part of the text differently from the whole")
