"""Options that depend on each other across the argument dataclasses, checked once, when the command is parsed.

A dataclass checks its own ranges in its `__post_init__` (common/config/arguments.py); what needs two of
them (a head with a loss option, an analysis with a stage, ...) is checked here, on the parsed values, and
what depends on the data right after it is read (`check_against_data`, and the analyses' own checks).
A field missing from a recipe's dataclasses counts as unset.
"""

from common.config.errors import OptionError


def _values(args) -> dict:
    values = {}
    for group in args:  # field names are unique across a recipe's dataclasses (HfArgumentParser requires it)
        values.update(vars(group))
    return values


def check_against_data(args, raw) -> None:
    """Right after the data is read: refuse the options made for classes when its label turned out to be a
    score to predict (`raw.regression`, asked or seen in the labels), naming the label and how to change it."""
    if not raw.regression:
        return
    given = _values(args).get
    for flag, is_set in (("--multi_label", given("multi_label")), ("--class_weights", given("class_weights")),
                         ("--teacher_model", given("teacher_model")), ("--explain_examples", given("explain_examples")),
                         ("--group_column", given("group_column"))):
        if is_set:
            raise OptionError(f"{flag} is for classes, and the label '{raw.label_column}' here is a score to predict "
                              "(regression): leave it out, or give --regression False to make each value a class")


def check_combinations(args) -> None:
    """Refuse a combination of settings that would fail later or silently do less than asked (ValueError)."""
    values = _values(args)
    given = values.get
    if given("crf"):
        if given("label_all_tokens"):
            raise ValueError("--crf scores each word once (its first subword): it does not combine with "
                             "--label_all_tokens")
        if given("class_weights"):
            raise ValueError("--class_weights and --crf do not combine: the CRF loss is over whole tag sequences")
        if given("lora_r"):
            raise ValueError("--crf and --lora_r do not combine: the CRF wraps the model's forward, which peft wraps too")
    if given("crf_learning_rate") is not None and not given("crf"):
        raise ValueError("--crf_learning_rate sets the CRF's learning rate: it needs --crf")
    if given("cv_checkpoint_selection") is not None and not given("cv_folds"):
        raise ValueError("--cv_checkpoint_selection chooses checkpoints inside cross-validation folds: it needs "
                         "--cv_folds")
    if given("hp_search_trials"):
        if given("cv_folds"):
            raise ValueError("--hp_search_trials and --cv_folds do not combine: a search scores each trial on the "
                             "validation set; run the search, then --cv_folds with its best_params.yaml")
        if not given("do_train"):
            raise ValueError("--hp_search_trials searches training settings: it needs --do_train")
        if given("resume_from_checkpoint"):
            raise ValueError("--hp_search_trials starts every trial afresh: it does not combine with "
                             "--resume_from_checkpoint (a shared study is continued by running the command again)")
    if given("teacher_model"):
        for flag, is_set in (("--cv_folds", given("cv_folds")), ("--multi_label", given("multi_label")),
                             ("--long_text windows", given("long_text") == "windows"), ("--lora_r", given("lora_r")),
                             ("--do_train False", not given("do_train"))):
            if is_set:
                raise ValueError(f"--teacher_model distils while training: it does not combine with {flag}")
    if given("student_layers") and given("scratch_model_type"):
        raise ValueError("--student_layers keeps some layers of --model; a model built from scratch "
                         "(--scratch_model_type) is not loaded from one: give it fewer --scratch_layers")
    if given("pack_batches") and "tag_scheme" not in values:  # only the tagging dataclasses have a tag scheme
        raise ValueError("--pack_batches packs the sentences of token-labelled data: this recipe classifies whole "
                         "texts (its batches are grouped by length instead)")
    if given("explain_examples") and not given("do_eval"):
        raise ValueError("--explain_examples explains validation texts: set --do_eval")
    if given("group_column") and not (given("do_eval") or given("do_predict")):
        raise ValueError("--group_column scores predictions by group: set --do_eval or --do_predict")
    if given("long_text") == "windows" and given("remove_unused_columns") is False:
        raise ValueError("--long_text windows needs --remove_unused_columns True (the rows' document column is not "
                         "a model input)")
