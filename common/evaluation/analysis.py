"""After a classification run, on request: metrics per group (`--group_column`) and explanations of
validation texts (`--explain_examples`). Options are checked before training, so a mistake costs no run."""

from common.config.errors import OptionError
from common.evaluation.attributions import check_explain_examples, explain_validation
from common.evaluation.groups import check_group_column, scores_by_group


def check_analysis_options(data_args, training_args, raw) -> None:
    check_group_column(raw, data_args.group_column, data_args.multi_label)
    check_explain_examples(data_args, raw)
    if data_args.explain_examples and not training_args.do_eval:
        raise OptionError("--explain_examples explains validation texts: set --do_eval")
    if data_args.group_column and not (training_args.do_eval or training_args.do_predict):
        raise OptionError("--group_column scores predictions by group: set --do_eval or --do_predict")


def analyse(trainer, tokenizer, raw, predictions: dict, labels: list[str], data_args, max_length: int) -> dict:
    """The results to add to all_results.json (files are written beside it)."""
    args = trainer.args
    results = scores_by_group(raw, data_args.group_column, predictions, labels, args.output_dir, args.seed)
    if data_args.explain_examples:
        results.update(explain_validation(trainer.model, tokenizer, raw, predictions["validation"], labels,
                                          data_args.explain_examples, max_length, args.output_dir,
                                          data_args.multi_label))
    return results
