"""A small model built from a config instead of downloaded: its arguments, and a character vocabulary.

For machines without Hub access (and for tests): the tokenizer is a BERT WordPiece tokenizer, as
Chinese BERT and ERNIE use (Han characters one per token, lower case), whose vocabulary holds every
character seen at least `vocab_min_count` times in the texts it is built from, plus each non-Han
character as a `##` continuation piece so that runs of Latin letters and digits split into characters,
never [UNK]. The Chinese recipe builds one from its training texts; the pretraining recipe from its corpus.
"""

import logging
import tempfile
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from transformers import AutoConfig, BertTokenizerFast

from common.config.arguments import check_at_least

logger = logging.getLogger(__name__)


@dataclass
class ScratchArguments:
    """A small model trained from scratch (no download): a character vocabulary from the texts it trains on."""

    scratch_model_type: str | None = field(
        default=None, metadata={"help": "Build a new model of this type (roformer, ernie, bert) instead of loading "
                                        "--model; none: load --model (to use a scratch config's settings with a "
                                        "saved model)."}
    )
    scratch_layers: int = field(default=2, metadata={"help": "Transformer layers of the new model."})
    scratch_hidden_size: int = field(default=128, metadata={"help": "Hidden size (feed-forward: 4x)."})
    scratch_heads: int = field(default=2, metadata={"help": "Attention heads."})
    scratch_dropout: float = field(default=0.1, metadata={"help": "Dropout on hidden states and attention weights."})
    vocab_min_count: int = field(default=1, metadata={"help": "Keep characters seen at least this often in training."})

    def __post_init__(self):
        if self.scratch_model_type in ("", "none"):
            self.scratch_model_type = None
        check_at_least(self, {"scratch_layers": 1, "scratch_hidden_size": 1, "scratch_heads": 1, "vocab_min_count": 1,
                              "scratch_dropout": 0})
        if self.scratch_hidden_size % self.scratch_heads:
            raise ValueError(f"--scratch_hidden_size {self.scratch_hidden_size} must be a multiple of --scratch_heads "
                             f"{self.scratch_heads}")


SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _normalise(char: str) -> str:
    # what BertTokenizer's normaliser does to a character: lower case, accents stripped
    return "".join(c for c in unicodedata.normalize("NFD", char.lower()) if unicodedata.category(c) != "Mn")


def is_han(char: str) -> bool:
    """A CJK unified ideograph (basic block or extension A)."""
    return "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf"


def character_vocabulary(texts, min_count: int = 1, han_continuations: bool = True) -> list[str]:
    """Special tokens, then every character seen at least `min_count` times (most frequent first), then
    each as a continuation (##c), so any split of the text is covered. A Han character is always a word of
    its own to a Chinese tokenizer: `han_continuations=False` leaves out their never-used ## copies."""
    raw = Counter()
    for text in texts:
        raw.update(text)  # counted as written first: normalising each distinct character once is far quicker
    counts = Counter()
    for char, n in raw.items():
        for c in _normalise(char):
            if not c.isspace():
                counts[c] += n
    chars = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
    return [*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars if han_continuations or not is_han(c))]


def character_tokenizer(texts, min_count: int = 1, model_max_length: int = 512,
                        han_continuations: bool = True) -> BertTokenizerFast:
    """A fast BERT tokenizer over the texts' characters, for a model trained from scratch."""
    vocab = character_vocabulary(texts, min_count, han_continuations)
    with tempfile.TemporaryDirectory() as folder:
        # from_pretrained(folder): BertTokenizerFast(vocab_file=...) silently builds a 5-token vocabulary
        with open(f"{folder}/vocab.txt", "w", encoding="utf-8") as f:
            f.write("\n".join(vocab) + "\n")
        tokenizer = BertTokenizerFast.from_pretrained(folder, do_lower_case=True, tokenize_chinese_chars=True,
                                                      model_max_length=model_max_length)
    if len(tokenizer) != len(vocab):
        raise RuntimeError(f"the character tokenizer has {len(tokenizer)} tokens, expected {len(vocab)}")
    logger.info(f"Character vocabulary: {len(vocab):,} tokens "
                f"(characters seen at least {min_count} times)")
    return tokenizer


def describe(scratch_args) -> str:
    """The model built from scratch, in words, for the results and the model card."""
    return (f"{scratch_args.scratch_model_type} from scratch ({scratch_args.scratch_layers} layers, hidden "
            f"{scratch_args.scratch_hidden_size}, character vocabulary)")


def scratch_config(scratch_args, tokenizer, **settings):
    """The config of a new `scratch_args.scratch_model_type` model over `tokenizer`'s vocabulary."""
    return AutoConfig.for_model(
        scratch_args.scratch_model_type,
        vocab_size=len(tokenizer),
        hidden_size=scratch_args.scratch_hidden_size,
        num_hidden_layers=scratch_args.scratch_layers,
        num_attention_heads=scratch_args.scratch_heads,
        intermediate_size=4 * scratch_args.scratch_hidden_size,
        max_position_embeddings=tokenizer.model_max_length,
        pad_token_id=tokenizer.pad_token_id,
        hidden_dropout_prob=scratch_args.scratch_dropout,
        attention_probs_dropout_prob=scratch_args.scratch_dropout,
        **settings,
    )
