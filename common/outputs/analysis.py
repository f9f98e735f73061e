"""After a classification run, on request: metrics per group (`--group_column`) with their plots, and
explanations of validation texts (`--explain_examples`) in explanations/."""

from pathlib import Path

from common.evaluation.attributions import explain_validation
from common.evaluation.groups import scores_by_group
from common.outputs.explanations import write_explanations
from common.outputs.plots import group_bars


def analyse(trainer, tokenizer, raw, predictions: dict, labels: list[str], analysis_args, max_length: int,
            multi_label: bool = False) -> dict:
    """The results to add to all_results.json; their plots and explanations are written beside it."""
    args = trainer.args
    results = scores_by_group(raw, analysis_args.group_column, predictions, labels, args.seed)
    for prefix, name in (("eval", "validation"), ("test", "test")):
        if f"{prefix}_groups" in results:
            result = results[f"{prefix}_groups"]
            result["plot"] = group_bars(Path(args.output_dir) / f"groups_{name}.png", result, name).name
    if analysis_args.explain_examples:
        facts, explanations = explain_validation(trainer.model, tokenizer, raw, predictions["validation"], labels,
                                                 analysis_args.explain_examples, max_length, multi_label)
        write_explanations(Path(args.output_dir) / "explanations", explanations,
                           f"Validation texts explained ({facts['texts']})")
        results["explanations"] = {"folder": "explanations", **facts}
    return results
