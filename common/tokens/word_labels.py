"""Word-level labels on subword models: windows over long sentences, label alignment, word predictions.

A sentence is a list of words (CoNLL tokens, or single characters for Chinese). The fast tokenizer
splits words into subwords and tells, through `word_ids()`, which word each subword came from.
- Training labels go on the first subword of each word; the other subwords get -100 (ignored by the
  loss), or with `label_all_tokens` the word's label, where B-X becomes I-X after the first subword.
- A sentence longer than the model's maximum is cut into windows at word boundaries that overlap by
  about `stride` subwords. Each word is predicted from the window where it has the most context
  (the most subwords on its shorter side), so no word is dropped and edge words get their best view.
- Predictions are read from each word's first subword: one tag per word, whatever the option above.
"""

import dataclasses
import logging
from collections import Counter
from dataclasses import dataclass

import datasets
import numpy as np
import torch

from common.config.errors import OptionError

logger = logging.getLogger(__name__)

IGNORE = -100


@dataclass
class Window:
    """The words of one model input cut from a long sentence, and those it predicts for (the rest is context)."""

    sentence: int  # index of the sentence in its split
    start: int  # first word of the window
    end: int  # one past its last word
    own_start: int  # the words this window predicts: [own_start, own_end)
    own_end: int


def plan_windows(sentence: int, word_lengths: list[int], budget: int, stride: int) -> list[Window]:
    """Windows of at most `budget` subwords, cut between words, overlapping by about `stride` subwords.

    A single word longer than the budget gets a window of its own (its extra subwords are cut, but
    the word is still predicted from its first subword).
    """
    n = len(word_lengths)
    ends = np.cumsum([0, *word_lengths])  # ends[i] = subwords before word i
    windows, start = [], 0
    while True:
        end = max(start + 1, int(np.searchsorted(ends, ends[start] + budget, side="right")) - 1)
        windows.append(Window(sentence, start, min(end, n), start, min(end, n)))
        if end >= n:
            break
        # the next window starts where at most `stride` subwords of this one remain before `end`
        next_start = int(np.searchsorted(ends, ends[end] - stride, side="left"))
        start = min(max(next_start, start + 1), end)
    _assign_words(windows, ends)
    return windows


def _assign_words(windows: list[Window], ends: np.ndarray) -> None:
    """Give each word to the window where its shorter side of context (in subwords) is longest."""
    if len(windows) == 1:
        return
    n = len(ends) - 1
    best = np.full(n, -1)
    best_context = np.full(n, -1)
    for k, w in enumerate(windows):
        words = np.arange(w.start, w.end)
        left = ends[words] - ends[w.start]  # subwords before the word, inside the window
        right = ends[w.end] - ends[words + 1]  # subwords after it
        context = np.minimum(left, right)
        better = context > best_context[words]
        best[words[better]], best_context[words[better]] = k, context[better]
    for k, w in enumerate(windows):
        owned = np.flatnonzero(best == k)
        # owned words are contiguous: context rises then falls along a window, and windows are in order
        w.own_start, w.own_end = (int(owned[0]), int(owned[-1]) + 1) if len(owned) else (w.start, w.start)


def windows_of(windows: list[Window], sentences) -> tuple[list[int], list[Window]]:
    """The rows (windows) of some sentences, and those windows renumbered to the sentences' positions in the list."""
    position = {int(s): i for i, s in enumerate(sentences)}
    rows = [k for k, w in enumerate(windows) if w.sentence in position]
    return rows, [dataclasses.replace(windows[k], sentence=position[windows[k].sentence]) for k in rows]


def log_windowed(windows: list[Window], count: int, max_length: int, name: str, what: str) -> None:
    """Say how many sentences (or texts) were too long for one window: never cut without a word."""
    long = sum(1 for n in Counter(w.sentence for w in windows).values() if n > 1)
    if long:
        logger.warning(f"{name}: {long:,} {what} longer than {max_length} tokens were split into overlapping "
                       f"windows ({len(windows):,} windows for {count:,} {what})")


def continuation_label(tag: str) -> str:
    """The tag of a word's later subwords under --label_all_tokens: B-X becomes I-X."""
    return "I-" + tag[2:] if tag.startswith("B-") else tag


def align_labels(word_ids: list[int | None], word_tags: list[str] | None, label2id: dict[str, int],
                 label_all_tokens: bool = False) -> list[int]:
    """Token labels for one window: first subword of a word gets its tag, others -100 or the I- tag."""
    labels, previous = [], None
    for word in word_ids:
        if word is None or word_tags is None:
            labels.append(IGNORE)
        elif word != previous:
            labels.append(label2id[word_tags[word]])
        else:
            labels.append(label2id[continuation_label(word_tags[word])] if label_all_tokens else IGNORE)
        previous = word
    return labels


def word_emissions(windows: list[Window], window_word_ids: list[list[int | None]], logits: np.ndarray,
                   sentence_lengths: list[int]) -> list[np.ndarray]:
    """Per sentence, a (words, tags) array: each word's logits at its first subword, in the window that owns it."""
    result = [np.full((n, logits.shape[-1]), np.nan, dtype=np.float32) for n in sentence_lengths]
    for w, word_ids, row in zip(windows, window_word_ids, logits):
        previous = None
        for position, word in enumerate(word_ids):
            if word is not None and word != previous and w.own_start <= w.start + word < w.own_end:
                result[w.sentence][w.start + word] = row[position]
            previous = word
    for sentence, scores in enumerate(result):
        if np.isnan(scores).any():  # cannot happen unless windows and features disagree: never hide it
            raise RuntimeError(f"sentence {sentence}: a word got no scores")
    return result


def word_predictions(windows: list[Window], window_word_ids: list[list[int | None]], predicted_ids: np.ndarray,
                     sentence_lengths: list[int]) -> list[list[int]]:
    """One predicted label id per word of every sentence, each from its first subword in its window."""
    per_word = word_emissions(windows, window_word_ids, np.asarray(predicted_ids, dtype=np.float32)[..., None],
                              sentence_lengths)
    return [scores[:, 0].astype(int).tolist() for scores in per_word]


@dataclass
class TaggedFeatures:
    """A split's model inputs (one row per window) and what maps them back to words."""

    dataset: datasets.Dataset
    windows: list[Window]
    word_ids: list[list[int | None]]
    sentence_lengths: list[int]

    def select_sentences(self, sentences) -> "TaggedFeatures":
        """The features of these sentences only (a cross-validation fold), numbered in the order given."""
        rows, windows = windows_of(self.windows, sentences)
        return TaggedFeatures(self.dataset.select(rows), windows, [self.word_ids[k] for k in rows],
                              [self.sentence_lengths[s] for s in sentences])

    def tags(self, logits: np.ndarray, label_list: list[str], decode=None) -> list[list[str]]:
        """Predicted tag of every word of every sentence, from the windows' logits (in input order): each word's
        best tag, or `decode(scores)` of the whole sentence's (words, tags) scores (a CRF's Viterbi)."""
        if decode is not None:
            emissions = word_emissions(self.windows, self.word_ids, logits, self.sentence_lengths)
            per_word = [decode(torch.from_numpy(scores)) if len(scores) else [] for scores in emissions]
            return [[label_list[i] for i in sentence] for sentence in per_word]
        per_word = word_predictions(self.windows, self.word_ids, logits.argmax(-1), self.sentence_lengths)
        return [[label_list[i] for i in sentence] for sentence in per_word]


def encode_tagged_split(sentences: list[list[str]], tags: list[list[str]] | None, tokenizer, label2id: dict,
                        max_length: int, stride: int, label_all_tokens: bool = False, name: str = "") -> TaggedFeatures:
    """Tokenize word-split sentences into windows of at most `max_length` tokens, with aligned labels."""
    # 1. subwords per word, to plan the windows; a word the tokenizer turns into nothing (a lone
    #    control or zero-width character) is read as the unknown token, so it still gets a prediction
    words_per_sentence = [list(s) for s in sentences]
    encoded = tokenizer(words_per_sentence, is_split_into_words=True, add_special_tokens=False)
    empty_words = 0
    lengths = []
    for i, words in enumerate(words_per_sentence):
        counts = np.bincount([w for w in encoded.word_ids(i) if w is not None], minlength=len(words))
        for j in np.flatnonzero(counts == 0):
            words[j] = tokenizer.unk_token
            counts[j] = 1
            empty_words += 1
        lengths.append(counts.tolist())
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if stride >= budget:
        raise OptionError(f"--stride {stride} must be smaller than the {budget} subwords a window holds "
                          "(--max_seq_length less the special tokens)")
    windows = [w for i, counts in enumerate(lengths) for w in plan_windows(i, counts, budget, stride)]

    # 2. the windows themselves, with special tokens, and labels on their words
    window_words = [words_per_sentence[w.sentence][w.start:w.end] for w in windows]
    encoded = tokenizer(window_words, is_split_into_words=True, truncation=True, max_length=max_length)
    word_ids = [encoded.word_ids(k) for k in range(len(windows))]
    columns = {key: encoded[key] for key in encoded.keys()}
    if tags is not None:
        columns["labels"] = [align_labels(ids, tags[w.sentence][w.start:w.end], label2id, label_all_tokens)
                             for w, ids in zip(windows, word_ids)]
    features = TaggedFeatures(datasets.Dataset.from_dict(columns), windows, word_ids, [len(s) for s in sentences])

    log_windowed(windows, len(sentences), max_length, name, "sentences")
    if empty_words:
        logger.warning(f"{name}: {empty_words:,} words that the tokenizer turns into nothing were read as "
                       f"{tokenizer.unk_token!r}")
    return features
