"""Steps that several recipes take, written once: texts tokenized (with a teacher's logits), cross-validation or a
search before training, and the outputs of a trained classifier."""

from pathlib import Path

from common.models.heads import decoding_of
from common.outputs.all_results import write_all_results
from common.outputs.analysis import analyse
from common.outputs.cv_results import write_cv_results
from common.outputs.predictions import write_classification_predictions
from common.outputs.run_report import write_run_report
from common.tokens.tokenization import max_input_length, tokenization_settings, tokenize_splits
from common.training.distillation import add_teacher_logits


def tokenize_rows(raw, labels: list[str], tokenizer, model_config, data_args, training_args, distill_args):
    """The longest input the model takes (--max_seq_length within its limit) and every split tokenized (by the
    main process first: the others read its cache); with --teacher_model, its logits for every training row."""
    max_length = max_input_length(tokenizer, model_config, data_args.max_seq_length)
    with training_args.main_process_first(desc="tokenization"):
        tokenized = tokenize_splits(raw, tokenizer, max_length, **tokenization_settings(data_args))
    if distill_args.teacher_model:
        tokenized["train"] = add_teacher_logits(tokenized, raw, labels, tokenizer, distill_args, data_args,
                                                training_args)
    return max_length, tokenized


def cross_validate_or_search(run, search_args, settings, new_trainer, cross_validation) -> bool:
    """Whether the final model trains next.

    --cv_folds K: `cross_validation()` replaces training (a fresh model per fold; cv_results.json and a
    README.md of the folds). --hp_search_trials N: an Optuna search first (results in hp_search/), with
    `new_trainer(args)` building each trial's trainer; its best settings go into `run.args`, and the final
    model trains on them if --hp_search_train_best.
    """
    if run.args.cv_folds:
        write_cv_results(run.args.output_dir, cross_validation())
        return False
    if search_args.hp_search_trials:
        from common.outputs.hp_search import write_search_results  # (optuna: 0.4 s to import, for searches only)
        from common.training.hp_search import search_hyperparameters

        search = search_hyperparameters(new_trainer, run, search_args, settings)
        write_search_results(run.args.output_dir, search, settings)
        return bool(search_args.hp_search_train_best)
    return True


def write_classifier_outputs(trainer, results: dict, predictions: dict, raw, labels: list[str], settings, recipe: str,
                             analysis_args, max_length: int, multi_label: bool = False,
                             separator: str | None = None) -> None:
    """Beside the saved model: the analysis asked for (--explain_examples, --group_column), all_results.json, the
    model card and plots, run_config.yaml, and the test rows' predictions.csv in the test file's order."""
    folder = trainer.args.output_dir
    results.update(analyse(trainer, trainer.processing_class, raw, predictions, labels, analysis_args, max_length,
                           multi_label))
    write_all_results(folder, results)
    write_run_report(folder, results, settings, trainer.state.log_history,
                     "regression" if raw.regression else "classification", predictions.get("validation"), recipe=recipe)
    if "test" in predictions:
        write_classification_predictions(Path(folder) / "predictions.csv", raw, "test", predictions["test"].predictions,
                                         labels, multi_label, separator or "|")


def write_tagger_outputs(trainer, results: dict, predictions: dict, settings, recipe: str) -> None:
    """Beside the saved model: all_results.json (with how the tags were decoded), the model card and plots,
    run_config.yaml (the recipe writes the predictions in its data's own format)."""
    results["decoding"] = decoding_of(trainer.model)
    write_all_results(trainer.args.output_dir, results)
    write_run_report(trainer.args.output_dir, results, settings, trainer.state.log_history, "ner",
                     predictions.get("validation"), recipe=recipe)
