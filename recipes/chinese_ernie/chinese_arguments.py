"""The Chinese recipe's data arguments: text classification or character-level NER, each task's options
checked against the task when parsed."""

from dataclasses import dataclass, field

from common.config.arguments import TaggingArguments, TextDataArguments, refuse_multi_label


@dataclass
class ChineseDataArguments(TaggingArguments, TextDataArguments):
    """Text classification (TextDataArguments) or character-level NER (TaggingArguments, and the span files' rules)."""

    task: str = field(default="classification", metadata={"help": "What to train.", "choices": ["classification", "ner"]})
    overlapping_spans: str = field(
        default="error", metadata={"help": "NER, span files: overlapping spans are an error, or the shorter one is "
                                           "dropped (and logged).", "choices": ["error", "keep_longest"]}
    )

    def __post_init__(self):
        super().__post_init__()
        refuse_multi_label(self)
        if self.task == "ner" and (self.long_text != "truncate" or self.head_tokens is not None):
            raise ValueError("--long_text and --head_tokens are for classification; NER always windows long texts "
                             "(--stride)")
        if self.task == "ner" and self.skip_bad_rows:
            raise ValueError("--skip_bad_rows is for classification rows; a bad line of an NER file stops the run")


def check_task_options(args) -> None:
    """The options of the other dataclasses that belong to one task (a rule parse_args applies, given by run.py)."""
    task = next(a.task for a in args if isinstance(a, ChineseDataArguments))
    given = {name for a in args for name, value in vars(a).items() if value}
    if task != "ner" and given & {"crf", "pack_batches"}:
        raise ValueError(f"{', '.join('--' + name for name in sorted(given & {'crf', 'pack_batches'}))}: for "
                         "--task ner")
    if task == "ner" and given & {"explain_examples", "group_column", "teacher_model"}:
        raise ValueError(f"{', '.join('--' + name for name in sorted(given & {'explain_examples', 'group_column', 'teacher_model'}))}: "
                         "for classification, not --task ner")
