"""Before a classification run: the analyses asked for (`--group_column`, `--explain_examples`) are checked
against the data, so a mistake costs no run (their combination with the stages is checked when parsed, in
common/config/combinations.py). The analyses themselves run after it (common.outputs.analysis)."""

from common.evaluation.attributions import check_explain_examples
from common.evaluation.groups import check_group_column


def check_analysis_options(analysis_args, raw, multi_label: bool = False) -> None:
    """Refuse --group_column and --explain_examples where the data has nothing they could score or explain."""
    check_group_column(raw, analysis_args.group_column, multi_label)
    check_explain_examples(analysis_args, raw)
