"""The pretraining recipe's own arguments: the corpus (plain-text files, held-out share, blocks) and the masking."""

from dataclasses import dataclass, field

from common.config.arguments import check_at_least

MASKINGS = ["token", "whole_word", "knowledge"]


@dataclass
class CorpusArguments:
    """Plain-text files, one document per line (.txt or .txt.gz), packed into blocks of --max_seq_length tokens."""

    benchmark: str | None = field(
        default=None, metadata={"help": "A corpus folder under --data_dir whose *.txt.gz files are the training text "
                                        "(zh_corpus)."}
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "Folder holding the benchmark data (default: $DATA_DIR, then ../shared/data)."}
    )
    train_file: list[str] | None = field(
        default=None, metadata={"help": "Training text: one or more .txt or .txt.gz files, one document per line; or "
                                        "a labelled task's .csv, .tsv, .json or .jsonl files (see --text_column)."}
    )
    text_column: str | None = field(
        default=None, metadata={"help": "For table files: the column whose text is pretrained on, one document per "
                                        "row (the labels are not read): task-adaptive pretraining."}
    )
    validation_file: list[str] | None = field(
        default=None, metadata={"help": "Held-out text in the same format (default: --validation_split_percentage "
                                        "of the training documents)."}
    )
    validation_split_percentage: float = field(
        default=1.0, metadata={"help": "Without --validation_file: this share of each training file's documents "
                                       "(every n-th line) is held out for evaluation; 0 holds none out."}
    )
    encoding: str = field(
        default="utf-8", metadata={"help": "Encoding of the text files (one that keeps '\\n' a single byte: utf-8, "
                                           "gb18030, big5, latin-1, ...)."}
    )
    max_seq_length: int = field(
        default=128, metadata={"help": "Block length in tokens, special tokens included: the documents are joined "
                                       "end to end (a [SEP] between two) and cut into blocks of this length."}
    )
    streaming: bool = field(
        default=False, metadata={"help": "Read and tokenize the training text while training, for corpora larger "
                                         "than memory (needs --max_steps). The held-out text is still read first."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Train on the first N blocks only."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on the first N held-out blocks."})

    def __post_init__(self):
        check_at_least(self, {"max_seq_length": 8, "max_train_samples": 1, "max_eval_samples": 1,
                              "validation_split_percentage": 0})
        if self.validation_split_percentage > 50:
            raise ValueError(f"--validation_split_percentage {self.validation_split_percentage} would hold out more "
                             "than it trains on (at most 50)")
        if self.encoding.lower().replace("-", "").replace("_", "").startswith(("utf16", "utf32")):
            raise ValueError(f"--encoding {self.encoding}: lines are read as bytes up to '\\n', which this encoding "
                             "splits; convert the files to utf-8")
        if self.benchmark and self.train_file:
            raise ValueError("give --benchmark or --train_file, not both")


def check_streaming_steps(args) -> None:
    """A stream has no length to count epochs in (a rule parse_args applies, given by run.py)."""
    corpus = next(a for a in args if isinstance(a, CorpusArguments))
    training = next(a for a in args if hasattr(a, "max_steps"))
    if corpus.streaming and training.do_train and training.max_steps <= 0:
        raise ValueError("--streaming reads the text while training, so there are no epochs to count: give "
                         "--max_steps")


@dataclass
class MaskingArguments:
    """Which tokens a training block hides from the model, how many, and the dropout while it learns to guess them."""

    masking: str = field(
        default="token", metadata={"help": "token: BERT's (each token alone); whole_word: all tokens of a word "
                                           "together; knowledge: ERNIE 1.0's, whole entities and phrases together "
                                           "(Chinese).", "choices": MASKINGS}
    )
    mlm_probability: float = field(
        default=0.15, metadata={"help": "Share of each block's tokens to mask (of these, 80% become [MASK], 10% a "
                                        "random token, 10% stay)."}
    )
    segmenter: str = field(
        default="auto", metadata={"help": "Where whole words come from: jieba (Chinese), tokenizer (its own words: "
                                          "text between spaces and punctuation), or auto (jieba when the text is "
                                          "mostly Han characters).", "choices": ["auto", "jieba", "tokenizer"]}
    )

    pretraining_dropout: float | None = field(
        default=None, metadata={"help": "Dropout in every dropout layer while pretraining (0 turns it off, as "
                                        "Cramming BERT does: a model that sees its text a few times does not "
                                        "overfit, and dropout is a third of a small model's step time on CPU). "
                                        "The saved config keeps the model's own dropout (--scratch_dropout for a "
                                        "new model), which fine-tuning uses. Default: the model's own."}
    )

    cls_objective: str = field(
        default="none", metadata={"help": "A training target for the [CLS] vector, which masked-word prediction "
                                          "leaves without one: bag_of_tokens has the MLM head predict, from [CLS], "
                                          "the block's tokens (their frequencies), added to the MLM loss while "
                                          "training. No new weights; the held-out loss stays the MLM loss alone.",
                                  "choices": ["none", "bag_of_tokens"]}
    )

    def __post_init__(self):
        if self.pretraining_dropout is not None and not 0 <= self.pretraining_dropout < 1:
            raise ValueError(f"--pretraining_dropout {self.pretraining_dropout} must be at least 0 and below 1")
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"--mlm_probability {self.mlm_probability} must be between 0 and 1")
        if self.masking == "knowledge" and self.segmenter == "tokenizer":
            raise ValueError("--masking knowledge finds entities and phrases with jieba (Chinese): it does not take "
                             "--segmenter tokenizer")
