"""Fine-tune ERNIE (or a Chinese BERT) for classification or character-level NER.

    python recipes/chinese_ernie/run.py --config recipes/chinese_ernie/configs/chnsenticorp.yaml --output_dir out/c
    python recipes/chinese_ernie/run.py --config recipes/chinese_ernie/configs/cluener.yaml --model hfl/chinese-macbert-base
    python recipes/chinese_ernie/run.py --config recipes/chinese_ernie/configs/chnsenticorp_scratch.yaml  # offline
    python recipes/chinese_ernie/run.py --task ner --train_file train.json --validation_file dev.json --metric_for_best_model f1

`task: classification` trains on texts with a label (ChnSentiCorp); `task: ner` on texts with entity
spans (CLUENER2020 JSON lines, or character-per-line BIO files). NER is exact on characters: labels go
through the tokenizer's offsets, so every character gets one tag and entities come back at their
original offsets, whatever the tokenizer does to spaces, Latin words, digits or case.
With `scratch_model_type`, a small model is built from a config with a character vocabulary taken from
the training texts, instead of loading a pretrained one. Settings: configs/chnsenticorp.yaml (configs/default.yaml
when the command line names other data, or --config FILE), then the command line.
"""

import logging
import sys
from pathlib import Path

from transformers import set_seed

from common.config.arguments import (AnalysisArguments, DistillationArguments, RecipeTrainingArguments, SearchArguments,
                                     TaggerModelArguments)
from common.config.parsing import parse_args
from common.config.process import run_main, setup_logging
from common.data.labels import build_label_list, encode_labels
from common.data.tagged import load_tagged_data, tag_set
from common.data.text import load_text_data
from common.evaluation.analysis import check_analysis_options
from common.evaluation.metrics import classification_metrics
from common.models.crf import attach_crf, decoding
from common.models.heads import trained_labels
from common.models.scratch import ScratchArguments
from common.outputs.all_results import write_all_results
from common.outputs.analysis import analyse
from common.outputs.cv_results import write_cv_results
from common.outputs.hp_search import write_search_results
from common.outputs.predictions import write_classification_predictions
from common.outputs.run_report import write_run_report
from common.tokens.tokenization import max_input_length, tokenization_settings, tokenize_splits
from common.training.cross_validation import cross_validate, cross_validate_tagger
from common.training.distillation import add_teacher_logits
from common.training.hp_search import search_hyperparameters
from common.training.output_dir import claim_output_dir, commit_outputs
from common.training.stages import build_trainer, tagger_trainer, train_evaluate_predict, train_tagger

if __package__:  # imported as a package module (recipes.<name>.<module>, as the tests do)
    from .arguments import ChineseDataArguments
    from .characters import encode_char_split
    from .cluener import read_char_file, write_cluener_predictions
    from .scratch import facts, tokenizer_and_model
else:  # run as a script, in this checkout or in a copy of the folder
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's modules, however started
    from arguments import ChineseDataArguments
    from characters import encode_char_split
    from cluener import read_char_file, write_cluener_predictions
    from scratch import facts, tokenizer_and_model

CONFIGS = Path(__file__).parent / "configs"
BENCHMARK_CONFIG = CONFIGS / "chnsenticorp.yaml"  # used when the command line names no data
logger = logging.getLogger(__name__)
ARGUMENTS = (TaggerModelArguments, ScratchArguments, ChineseDataArguments, RecipeTrainingArguments, AnalysisArguments,
             SearchArguments, DistillationArguments)


def classification(model_args, scratch_args, data_args, training_args, analysis_args, search_args, distill_args,
                   settings):
    """ChnSentiCorp-style text classification: load, build, train, evaluate, predict, write."""
    # Data: rows checked, labels mapped to ids (ChnSentiCorp has train, dev and test files)
    raw = load_text_data(data_args, seed=training_args.seed)
    labels = build_label_list(raw, model_labels=trained_labels(model_args, training_args))  # eval-only: the model's
    encode_labels(raw, labels)
    check_analysis_options(analysis_args, raw)  # --group_column, --explain_examples
    train_texts = raw.splits["train"].frame[data_args.text_column] if "train" in raw.splits else []
    tokenizer, model = tokenizer_and_model(model_args, scratch_args, data_args, labels, train_texts, False)
    max_length = max_input_length(tokenizer, model.config, data_args.max_seq_length)
    with training_args.main_process_first(desc="tokenization"):
        tokenized = tokenize_splits(raw, tokenizer, max_length, **tokenization_settings(data_args))
    if distill_args.teacher_model:  # --teacher_model: its logits for every training row, computed once
        tokenized["train"] = add_teacher_logits(tokenized, raw, labels, tokenizer, distill_args, data_args, training_args)

    if training_args.cv_folds:  # k-fold cross-validation instead: a fresh model per fold, cv_results.json
        write_cv_results(training_args.output_dir, cross_validate(
            lambda: tokenizer_and_model(model_args, scratch_args, data_args, labels, train_texts, False)[1],
            tokenized, training_args, classification_metrics(labels), labels, tokenizer, data_args.window_pooling))
        return  # main() moves the outputs in

    def new_trainer(args, model=None):  # without a model, a fresh one: a trial of --hp_search_trials
        model = model if model is not None else \
            tokenizer_and_model(model_args, scratch_args, data_args, labels, train_texts, False)[1]
        return build_trainer(model, args, tokenizer, tokenized.get("train"), tokenized.get("validation"),
                             classification_metrics(labels), window_pooling=data_args.window_pooling,
                             distillation=distill_args)

    if search_args.hp_search_trials:  # an Optuna search first (results in hp_search/); the best settings train below
        search = search_hyperparameters(new_trainer, training_args, search_args, settings)
        write_search_results(training_args.output_dir, search, settings)
        if not search_args.hp_search_train_best:
            return  # main() moves the outputs in
    trainer = new_trainer(training_args, model)
    results, predictions = train_evaluate_predict(trainer, tokenized, training_args, validation_predictions=True)

    if trainer.is_world_process_zero():
        results.update(facts(model_args, scratch_args, data_args, trainer, raw, labels, max_length, tokenized))
        results.update(analyse(trainer, tokenizer, raw, predictions, labels, analysis_args, max_length))  # if asked
        write_all_results(training_args.output_dir, results)
        write_run_report(training_args.output_dir, results, settings, trainer.state.log_history, "classification",
                         predictions.get("validation"), recipe="chinese_ernie")
        if "test" in predictions:
            write_classification_predictions(Path(training_args.output_dir) / "predictions.csv", raw, "test",
                                             predictions["test"].predictions, labels)


def ner(model_args, scratch_args, data_args, training_args, analysis_args, search_args, distill_args, settings):
    """CLUENER-style character NER: load, build, train, evaluate, predict, write."""
    # Data: texts with character-level IOB2 tags, every span checked against its text on load
    data = load_tagged_data(data_args, reader=lambda path: read_char_file(path, data_args.overlapping_spans,
                                                                          data_args.encoding))
    labels = tag_set(data, trained_labels(model_args, training_args))  # without training: the model's own
    texts = {name: ["".join(chars) for chars in split.tokens] for name, split in data.splits.items()}
    logger.info(f"Tags: {labels}; texts: " + ", ".join(f"{k} {len(v):,}" for k, v in texts.items()))

    def new_model():  # built again for every fold of --cv_folds and every trial of --hp_search_trials
        tokenizer, model = tokenizer_and_model(model_args, scratch_args, data_args, labels, texts.get("train", []), True)
        if model_args.crf:  # a CRF layer on the tag scores, decoded by Viterbi (model.crf)
            attach_crf(model, labels, model_args.model_name_or_path)
        return tokenizer, model

    tokenizer, model = new_model()
    crf = getattr(model, "crf", None)
    max_length = max_input_length(tokenizer, model.config, data_args.max_seq_length)
    features = {name: encode_char_split(texts[name], split.tags, tokenizer, model.config.label2id, max_length,
                                        data_args.stride, name)
                for name, split in data.splits.items()}

    if training_args.cv_folds:  # k-fold cross-validation over the training texts instead: cv_results.json
        write_cv_results(training_args.output_dir, cross_validate_tagger(
            lambda: new_model()[1], features, data.splits, training_args, labels, tokenizer))
        return  # main() moves the outputs in

    if search_args.hp_search_trials:  # an Optuna search first (results in hp_search/); the best settings train below
        search = search_hyperparameters(lambda args: tagger_trainer(new_model()[1], tokenizer, args, features,
                                                                    data.splits, labels),
                                        training_args, search_args, settings)
        write_search_results(training_args.output_dir, search, settings)
        if not search_args.hp_search_train_best:
            return  # main() moves the outputs in

    # Train, evaluate, predict: entity scores on characters (exact span and type, as CLUENER counts)
    trainer, results, predictions = train_tagger(model, tokenizer, training_args, features, data.splits, labels,
                                                 validation_predictions=True)

    # Outputs: all_results.json; each predicted split in CLUENER's JSON format, in input order
    if trainer.is_world_process_zero():
        results.update(facts(model_args, scratch_args, data_args, trainer, data, labels, max_length),
                       decoding=decoding(crf))
        write_all_results(training_args.output_dir, results)
        write_run_report(training_args.output_dir, results, settings, trainer.state.log_history, "ner",
                         predictions.get("validation"), recipe="chinese_ernie")
        for split, prediction in predictions.items():
            predicted_tags = features[split].tags(prediction.predictions, labels, crf)
            write_cluener_predictions(Path(training_args.output_dir) / f"{split}_predictions.json",
                                      data.splits[split], predicted_tags)


def main(argv=None):
    """Parse the settings, claim the output folder, run the task, move the outputs in."""
    model_args, scratch_args, data_args, training_args, analysis_args, search_args, distill_args, settings = parse_args(
        ARGUMENTS, argv, benchmark_config=BENCHMARK_CONFIG, default_config=CONFIGS / "default.yaml")
    setup_logging(training_args)
    claim_output_dir(training_args)  # this run's alone: locked; an earlier run's files stay until ours are written
    set_seed(training_args.seed)  # before the model is built, so the new weights are reproducible
    if scratch_args.scratch_model_type and not training_args.do_train:
        logger.warning(f"--do_train False: --scratch_model_type is ignored; model and tokenizer come from --model "
                       f"{model_args.model_name_or_path}")
        scratch_args.scratch_model_type = None
    task = ner if data_args.task == "ner" else classification
    task(model_args, scratch_args, data_args, training_args, analysis_args, search_args, distill_args, settings)
    commit_outputs(training_args)  # this run's outputs replace the earlier run's, now that all are written


if __name__ == "__main__":
    run_main(main)
