"""What a masked-language-model block hides: units of tokens chosen at random until a share of the tokens is masked.

A unit is what is masked as a whole; the three strategies differ only in what they call a unit:
- `token`: each token (BERT);
- `whole_word`: the tokens of one word. Words come from jieba for Chinese (a Han character is one token,
  so a word of three characters is three tokens masked together) and from the tokenizer's own word
  split otherwise (word pieces joined: `un ##believ ##able`);
- `knowledge`: ERNIE 1.0's phrase- and entity-level masking. Units are jieba's words, except that
  named entities and short noun phrases become one unit each. Entities are runs of words jieba's
  part-of-speech tagger marks as person (nr), place (ns), organisation (nt) or other proper noun
  (nz); phrases are runs of two or more nouns, adjectives and verbal nouns that end in a noun, up to
  MAX_PHRASE_CHARS characters (a small chunker, in place of ERNIE's own lexical analyser).

Each block carries `word_starts` (1 where a unit begins). The collator shuffles a block's units and
takes them while they fit in round(mlm_probability x its tokens), as Google's BERT data script does,
so the masked share is the setting's for every strategy; the chosen tokens become [MASK] (80%), a
random token (10%) or stay (10%).

A block's masks depend only on the seed, the epoch and the block's tokens (not on how many batches came
before it): a run resumed from a checkpoint, which skips the batches before it without collating them,
masks every later block as the uninterrupted run does, and so do runs with other batch sizes, data-loader
workers or processes. Each epoch masks a block anew (`MaskEachEpochAnew` tells the collator the epoch).
"""

import itertools
import logging
import zlib
from dataclasses import dataclass

import numpy as np
from transformers import DataCollatorForLanguageModeling, DataCollatorForTokenClassification, TrainerCallback

from common.config.errors import OptionError
from common.models.scratch import is_han

logger = logging.getLogger(__name__)

ENTITY_TAGS = {"nr", "nrfg", "nrt", "ns", "nt", "nz"}  # jieba: persons, places, organisations, other proper nouns
PHRASE_TAGS = {"n", "ng", "nl", "vn", "an", "a", "b", *ENTITY_TAGS}  # nouns, verbal nouns, adjectives, distinguishers
MAX_PHRASE_CHARS = 8


def jieba_module():
    """jieba, quiet (it logs its dictionary loading on every start)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def word_spans(text: str) -> list[tuple[int, int]]:
    """The character spans of jieba's words (they cover the text, spaces included)."""
    spans, start = [], 0
    for word in jieba_module().cut(text):
        spans.append((start, start + len(word)))
        start += len(word)
    return spans


def knowledge_spans(text: str) -> tuple[list[tuple[int, int]], int, int]:
    """Units for knowledge masking: jieba's words, with each entity and short noun phrase merged into one.
    Also the number of characters in entity units and in phrase units."""
    jieba_module()
    from jieba import posseg

    words, start = [], 0
    for pair in posseg.cut(text):
        words.append((start, start + len(pair.word), pair.flag))
        start += len(pair.word)
    spans, entity_chars, phrase_chars, i = [], 0, 0, 0
    while i < len(words):
        j = i + 1
        if words[i][2] in ENTITY_TAGS:  # a run of entity words: one entity (张 / 三丰, 北京 / 大学)
            while j < len(words) and words[j][2] in ENTITY_TAGS:
                j += 1
            entity_chars += words[j - 1][1] - words[i][0]
        elif words[i][2] in PHRASE_TAGS:  # the longest run of phrase words that ends in a noun and fits
            end = i + 1
            while end < len(words) and words[end][2] in PHRASE_TAGS and words[end][1] - words[i][0] <= MAX_PHRASE_CHARS:
                end += 1
            while end - i > 1 and not words[end - 1][2].startswith(("n", "vn")):
                end -= 1
            if end - i > 1:
                j = end
                phrase_chars += words[j - 1][1] - words[i][0]
        spans.append((words[i][0], words[j - 1][1]))
        i = j
    return spans, entity_chars, phrase_chars


UNSEGMENTED_SCRIPTS = {"Japanese kana": ("\u3040", "\u30ff"), "Thai": ("\u0e00", "\u0e7f"), "Lao": ("\u0e80", "\u0eff"),
                       "Khmer": ("\u1780", "\u17ff"), "Myanmar": ("\u1000", "\u109f")}


def choose_segmenter(masking_args, documents, path) -> str | None:
    """Where whole words come from for this text: jieba (mostly Han characters) or the tokenizer (words between
    spaces); None for token masking. Text in a script written without spaces that jieba does not segment is
    refused, since its "words" would be whole clauses."""
    if masking_args.masking == "token":
        return None
    letters = [c for text in itertools.islice(documents, 1000) for c in text if c.isalpha()]  # a sample is enough
    han = sum(map(is_han, letters)) / max(1, len(letters))
    if masking_args.segmenter != "auto":
        return masking_args.segmenter
    if han > 0.5:
        return "jieba"
    for script, (low, high) in UNSEGMENTED_SCRIPTS.items():
        if sum(low <= c <= high for c in letters) > 0.2 * len(letters):
            raise OptionError(f"--masking {masking_args.masking}: {path} is mostly {script} text, written without "
                              "spaces between words, and there is no word segmenter for it here: use --masking token")
    if masking_args.masking == "knowledge":
        raise OptionError(f"--masking knowledge finds entities and phrases in Chinese text (jieba), and {path} is "
                          f"not Chinese ({han:.0%} of its letters are Han characters): use --masking whole_word")
    return "tokenizer"


def starts_from_spans(offsets, spans: list[tuple[int, int]], length: int) -> list[int]:
    """1 for each token that begins a unit: the unit of a token is the span holding its first character."""
    unit_of = np.zeros(length + 1, dtype=np.int64)
    for k, (start, end) in enumerate(spans):
        unit_of[start:end] = k
    starts, previous = [], -1
    for start, _ in offsets:
        unit = int(unit_of[start])
        starts.append(int(unit != previous))
        previous = unit
    return starts


def starts_from_word_ids(word_ids: list[int | None]) -> list[int]:
    """1 for each token that begins one of the tokenizer's words (word pieces joined)."""
    return [int(k == 0 or word is None or word != word_ids[k - 1]) for k, word in enumerate(word_ids)]


@dataclass
class UnitMaskingCollator(DataCollatorForLanguageModeling):
    """Pads a batch of blocks and masks whole units (see the module's docstring) in each.

    Rows that already carry `labels` were masked once beforehand (the held-out blocks, so that every
    evaluation scores the same task) and are only padded.
    """

    needs_units: bool = False  # whole_word and knowledge: every row must carry word_starts
    epoch: int = 0  # the training epoch, set by MaskEachEpochAnew

    def __post_init__(self):
        super().__post_init__()
        self.padding = DataCollatorForTokenClassification(self.tokenizer)  # labels padded with -100

    def torch_call(self, examples):
        """A padded batch with input_ids, attention_mask and labels; each row's units masked (see mask_row)."""
        if "labels" in examples[0]:  # masked once already
            return self.padding([{"input_ids": row["input_ids"], "labels": row["labels"]} for row in examples])
        if self.needs_units and "word_starts" not in examples[0]:
            raise ValueError("whole-word and knowledge masking need each block's word_starts, and the batch has none "
                             "(--remove_unused_columns must stay False)")
        return self.padding([dict(zip(("input_ids", "labels"), self.mask_row(row, self.block_rng(row))))
                             for row in examples])

    def block_rng(self, row) -> np.random.Generator:
        """The generator of a block's masks in this epoch (a streamed block: its pass over the corpus), seeded by the
        seed, the epoch and the block's tokens."""
        tokens = zlib.crc32(np.asarray(row["input_ids"], dtype=np.int64).tobytes())
        return np.random.default_rng([self.seed or 0, row.get("pass", self.epoch), tokens])

    def mask_row(self, row, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """A block's masked input ids and its labels (-100 where nothing is predicted)."""
        ids = np.asarray(row["input_ids"], dtype=np.int64)
        special = np.asarray(row["special_tokens_mask"], dtype=bool)
        starts = np.asarray(row.get("word_starts", np.ones(len(ids))), dtype=bool)
        positions = np.flatnonzero(~special)
        budget = max(1, round(self.mlm_probability * len(positions)))
        # units: runs of maskable positions, a new one at each start (or after a special token)
        new_unit = starts[positions] | (np.diff(positions, prepend=-2) != 1)
        units = np.split(positions, np.flatnonzero(new_unit)[1:])
        chosen, total = [], 0
        for k in rng.permutation(len(units)):
            if total + len(units[k]) <= budget:
                chosen.append(units[k])
                total += len(units[k])
                if total == budget:
                    break
        masked = np.concatenate(chosen) if chosen else np.array([], dtype=np.int64)
        labels = np.full(len(ids), -100, dtype=np.int64)
        labels[masked] = ids[masked]
        draw = rng.random(len(masked))
        ids[masked[draw < self.mask_replace_prob]] = self.tokenizer.mask_token_id
        randomised = masked[(draw >= self.mask_replace_prob) & (draw < self.mask_replace_prob + self.random_replace_prob)]
        ids[randomised] = rng.integers(0, len(self.tokenizer), len(randomised))
        return ids.tolist(), labels.tolist()

    def mask_once(self, batch: dict, indices: list[int]) -> dict:
        """For datasets.map(batched=True, with_indices=True): blocks masked once, with their labels; block k
        always gets the same masks (its generator is seeded by the seed and k)."""
        masked = [self.mask_row({key: batch[key][i] for key in batch}, np.random.default_rng([self.seed or 0, k]))
                  for i, k in enumerate(indices)]
        return {"input_ids": [ids for ids, _ in masked], "labels": [labels for _, labels in masked]}


class MaskEachEpochAnew(TrainerCallback):
    """Tells the collator the epoch at each epoch's start (also the epoch a resumed run starts in), so that a
    block is masked differently in each epoch. Data-loader workers are started after it, for each epoch."""

    def __init__(self, collator: UnitMaskingCollator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        """The epoch starting (state.epoch is its number here, or within it when a resumed run starts)."""
        self.collator.epoch = int(state.epoch or 0)
