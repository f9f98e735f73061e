"""Outputs: what a run writes beside the saved model (all_results.json, predictions, run_config.yaml,
plots, the model card) and the table across runs (results_table, used by run_all.sh).

A new result file or plot goes here; its numbers come from common.evaluation.
"""
