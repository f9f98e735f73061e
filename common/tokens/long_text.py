"""Texts longer than the model's window, for classification (`--long_text`).

- `truncate` (the default, as the reference scripts): the first tokens that fit; the rest is never read.
- `head_tail`: the first `--head_tokens` tokens and the last ones that still fit (Sun et al. 2019, "How
  to Fine-Tune BERT for Text Classification?", keep 128 + 382 of 510: the start and the end of a
  document carry most of its topic). Single texts only.
- `windows`: overlapping windows of `--max_seq_length` tokens, `--stride` tokens shared by neighbours,
  each with the document's label (the tokenizer's own `return_overflowing_tokens`). For a pair, the
  first text is kept whole in every window and the second is windowed. Every window is a training
  row, so a document of five windows weighs five times one of a single window, as in the reference
  question-answering scripts. A document is predicted from the mean (or max, `--window_pooling`) of
  its windows' logits, and scored, written and counted as one row.
A text that fits is encoded exactly as without the option.
"""

import numpy as np

from common.config.errors import OptionError

SUN_ET_AL_HEAD = 128  # of 510 tokens


def head_tokens_for(requested: int | None, budget: int) -> int:
    """The head of `head_tail`: as asked (it must leave room for a tail), else 128 or, in shorter windows, a quarter."""
    if requested is None:
        return SUN_ET_AL_HEAD if SUN_ET_AL_HEAD < budget else budget // 4
    if not 0 <= requested < budget:
        raise OptionError(f"--head_tokens {requested} must be smaller than the {budget} tokens of text an input holds "
                          "(--max_seq_length less the special tokens), so that some of the tail is kept")
    return requested


def check_stride(stride: int, budget: int) -> None:
    """Consecutive windows must advance: the stride must be smaller than the text a window holds."""
    if not 0 <= stride < budget:
        raise OptionError(f"--stride {stride} must be smaller than the {budget} tokens of text a window holds "
                          "(--max_seq_length less the special tokens)")


def cut_head_tail(encoded: dict, row: int, head: int, budget: int) -> None:
    """Keep the first `head` and the last `budget - head` text tokens of row `row`, and its special tokens.

    Works on every per-token field (ids, attention mask, token types) through the special tokens mask.
    """
    special = np.asarray(encoded["special_tokens_mask"][row])
    text = np.flatnonzero(special == 0)
    if len(text) <= budget:
        return
    keep = np.concatenate([np.flatnonzero(special[:text[0]]), text[:head], text[len(text) - (budget - head):],
                           text[-1] + 1 + np.flatnonzero(special[text[-1] + 1:])])
    for key in encoded:
        if key not in ("special_tokens_mask", "overflow_to_sample_mapping") and \
                isinstance(encoded[key][row], list) and len(encoded[key][row]) == len(special):
            encoded[key][row] = [encoded[key][row][i] for i in keep]


def document_starts(documents: np.ndarray) -> np.ndarray:
    """The first row of each document, whose windows are consecutive rows."""
    return np.flatnonzero(np.r_[True, documents[1:] != documents[:-1]])


def pool_windows(values: np.ndarray, documents: np.ndarray, how: str = "mean") -> np.ndarray:
    """One row per document from the rows of its windows (consecutive): mean or max of logits."""
    starts = document_starts(documents)
    if how == "max":
        return np.maximum.reduceat(values, starts, axis=0)
    counts = np.diff(np.r_[starts, len(documents)]).reshape(-1, *([1] * (values.ndim - 1)))
    return (np.add.reduceat(values.astype(np.float64), starts, axis=0) / counts).astype(values.dtype)


def first_of_each(values: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """A document's labels: those of its first window (all its windows carry the same)."""
    return values[document_starts(documents)]
