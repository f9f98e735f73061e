"""Fine-tune a pretrained model to classify texts or text pairs, single- or multi-label, or to predict a score
(regression); benchmarks AG News, BBC News and GLUE CoLA, MRPC, RTE, STS-B.

    python recipes/text_classification/run.py --model bert-base-uncased --data_dir ../shared/data --output_dir out
    python recipes/text_classification/run.py --config recipes/text_classification/configs/stsb.yaml
    python recipes/text_classification/run.py --train_file train.csv --multi_label --label_separator "|" --output_dir out/mine
    torchrun --nproc_per_node 2 recipes/text_classification/run.py --model bert-base-uncased --output_dir out/ddp
    accelerate launch recipes/text_classification/run.py --model bert-base-uncased --output_dir out

Settings: configs/ag_news.yaml, or configs/default.yaml when the command line names other data (or
--config FILE), then the command line; every TrainingArguments flag works.
"""

import logging
from pathlib import Path

from transformers import set_seed

from common.config.arguments import (AnalysisArguments, DistillationArguments, ModelArguments, RecipeTrainingArguments,
                                     SearchArguments, TextDataArguments)
from common.config.combinations import check_against_data
from common.config.parsing import parse_args
from common.config.process import run_main, setup_logging
from common.data.labels import build_label_list, encode_labels
from common.data.text import load_text_data
from common.evaluation.analysis import check_analysis_options
from common.evaluation.metrics import text_metrics
from common.models.heads import build_classifier, trained_labels
from common.models.tokenizer import load_tokenizer
from common.outputs.all_results import run_facts
from common.steps import cross_validate_or_search, tokenize_rows, write_classifier_outputs
from common.training.cross_validation import cross_validate
from common.training.output_dir import RunFolder
from common.training.stages import build_trainer, train_evaluate_predict

ARGUMENTS = (ModelArguments, TextDataArguments, RecipeTrainingArguments, AnalysisArguments, SearchArguments,
             DistillationArguments)
CONFIGS = Path(__file__).parent / "configs"
BENCHMARK_CONFIG = CONFIGS / "ag_news.yaml"  # used when the command line names no data
logger = logging.getLogger(__name__)


def main(argv=None):
    """Topic of a text, one label or several a row: settings, output folder, data, model, training and
    outputs, top to bottom."""
    model_args, data_args, training_args, analysis_args, search_args, distill_args, settings = parse_args(
        ARGUMENTS, argv, benchmark_config=BENCHMARK_CONFIG, default_config=CONFIGS / "default.yaml")
    setup_logging(training_args)
    # The output folder is this run's alone (locked); an earlier run's files stay until the block ends with ours
    with RunFolder.of(training_args) as run:
        set_seed(training_args.seed)  # before the model is built, so the new head's weights are reproducible

        # Data: rows checked, a validation set split off if there is none, labels mapped to ids
        raw = load_text_data(data_args, seed=training_args.seed)  # raw.regression: a score, not classes
        check_against_data((data_args, training_args, analysis_args, distill_args), raw)
        multi_label, separator = data_args.multi_label, data_args.label_separator
        labels = build_label_list(raw, multi_label, separator, model_labels=trained_labels(model_args, training_args))
        encode_labels(raw, labels, multi_label, separator)
        logger.info(f"Labels: {labels}; rows: " + ", ".join(f"{k} {len(v.frame):,}" for k, v in raw.splits.items()))
        check_analysis_options(analysis_args, raw, multi_label)  # --group_column, --explain_examples

        # Model: the pretrained encoder with a fresh head (softmax, one sigmoid per label, or one score), label
        # names in its config
        tokenizer = load_tokenizer(model_args)
        metrics = text_metrics(raw, labels, multi_label)  # accuracy, F1, MCC...; or Pearson, Spearman, MSE

        def new_model():  # built again for every fold of --cv_folds and every trial of --hp_search_trials
            return build_classifier(model_args, labels, tokenizer, multi_label, raw.regression)

        model = new_model()
        max_length, tokenized = tokenize_rows(raw, labels, tokenizer, model.config, data_args, training_args,
                                              distill_args)  # with --teacher_model, its logits too

        def new_trainer(args, model=None):  # without a model, a fresh one
            return build_trainer(model if model is not None else new_model(), args, tokenizer, tokenized.get("train"),
                                 tokenized.get("validation"), metrics, window_pooling=data_args.window_pooling,
                                 distillation=distill_args)

        # --cv_folds K instead of training, or --hp_search_trials N before it
        if not cross_validate_or_search(run, search_args, settings, new_trainer, lambda: cross_validate(
                new_model, tokenized, run, metrics, labels, tokenizer, data_args.window_pooling)):
            return

        # Train, evaluate, predict
        trainer = new_trainer(training_args, model)
        results, predictions = train_evaluate_predict(trainer, tokenized, run, validation_predictions=True)

        # Outputs beside the saved model: all_results.json, model card, plots, run_config.yaml, predictions.csv,
        # explanations and scores by group if asked
        if trainer.is_world_process_zero():
            results.update(run_facts(model_args, data_args, trainer, raw, labels, max_length, tokenized))
            write_classifier_outputs(trainer, results, predictions, raw, labels, settings, "text_classification",
                                     analysis_args, max_length, multi_label, separator)


if __name__ == "__main__":
    run_main(main)
