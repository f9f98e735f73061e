"""Before a classification run: the options of the analyses asked for (`--group_column`,
`--explain_examples`) are checked, so a mistake costs no run. The analyses themselves run after it
(common.outputs.analysis)."""

from common.config.errors import OptionError
from common.evaluation.attributions import check_explain_examples
from common.evaluation.groups import check_group_column


def check_analysis_options(data_args, training_args, raw) -> None:
    """Refuse --group_column and --explain_examples where there is nothing they could score or explain."""
    check_group_column(raw, data_args.group_column, data_args.multi_label)
    check_explain_examples(data_args, raw)
    if data_args.explain_examples and not training_args.do_eval:
        raise OptionError("--explain_examples explains validation texts: set --do_eval")
    if data_args.group_column and not (training_args.do_eval or training_args.do_predict):
        raise OptionError("--group_column scores predictions by group: set --do_eval or --do_predict")
