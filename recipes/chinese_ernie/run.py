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
from common.models.heads import tag_decoder, trained_labels
from common.models.scratch import ScratchArguments
from common.steps import cross_validate_or_search, tokenize_rows, write_classifier_outputs, write_tagger_outputs
from common.tokens.tokenization import max_input_length
from common.training.cross_validation import cross_validate, cross_validate_tagger
from common.training.output_dir import RunFolder
from common.training.stages import build_trainer, tagger_trainer, train_evaluate_predict, train_tagger

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's own modules, wherever it is and however run
from characters import encode_char_split  # noqa: E402
from chinese_arguments import ChineseDataArguments, check_task_options  # noqa: E402
from cluener import read_char_file, write_cluener_predictions  # noqa: E402
from scratch import facts, tokenizer_and_model  # noqa: E402

CONFIGS = Path(__file__).parent / "configs"
BENCHMARK_CONFIG = CONFIGS / "chnsenticorp.yaml"  # used when the command line names no data
logger = logging.getLogger(__name__)
ARGUMENTS = (TaggerModelArguments, ScratchArguments, ChineseDataArguments, RecipeTrainingArguments, AnalysisArguments,
             SearchArguments, DistillationArguments)


def classification(run, model_args, scratch_args, data_args, analysis_args, search_args, distill_args, settings):
    """ChnSentiCorp-style text classification: load, build, train, evaluate, predict, write."""
    # Data: rows checked, labels mapped to ids (ChnSentiCorp has train, dev and test files)
    training_args = run.args
    raw = load_text_data(data_args, seed=training_args.seed)
    labels = build_label_list(raw, model_labels=trained_labels(model_args, training_args))  # eval-only: the model's
    encode_labels(raw, labels)
    check_analysis_options(analysis_args, raw)  # --group_column, --explain_examples
    columns = [raw.text_column] + ([raw.text_pair_column] if raw.text_pair_column else [])  # both texts of a pair
    train_texts = [text for c in columns for text in raw.splits["train"].frame[c]] if "train" in raw.splits else []

    def new_model():  # a scratch model's vocabulary comes from the training texts, the same every time
        return tokenizer_and_model(model_args, scratch_args, data_args, labels, train_texts, False)

    tokenizer, model = new_model()
    max_length, tokenized = tokenize_rows(raw, labels, tokenizer, model.config, data_args, training_args, distill_args)

    def new_trainer(args, model=None):  # without a model, a fresh one
        return build_trainer(model if model is not None else new_model()[1], args, tokenizer, tokenized.get("train"),
                             tokenized.get("validation"), classification_metrics(labels),
                             window_pooling=data_args.window_pooling, distillation=distill_args)

    if not cross_validate_or_search(run, search_args, settings, new_trainer, lambda: cross_validate(
            lambda: new_model()[1], tokenized, run, classification_metrics(labels), labels, tokenizer,
            data_args.window_pooling)):
        return  # --cv_folds K instead of training, or --hp_search_trials N alone
    trainer = new_trainer(training_args, model)
    results, predictions = train_evaluate_predict(trainer, tokenized, run, validation_predictions=True)

    if trainer.is_world_process_zero():
        results.update(facts(model_args, scratch_args, data_args, trainer, raw, labels, max_length, tokenized))
        write_classifier_outputs(trainer, results, predictions, raw, labels, settings, "chinese_ernie", analysis_args,
                                 max_length)


def ner(run, model_args, scratch_args, data_args, analysis_args, search_args, distill_args, settings):
    """CLUENER-style character NER: load, build, train, evaluate, predict, write."""
    # Data: texts with character-level IOB2 tags, every span checked against its text on load
    data = load_tagged_data(data_args, reader=lambda path: read_char_file(path, data_args.overlapping_spans,
                                                                          data_args.encoding))
    labels = tag_set(data, trained_labels(model_args, run.args))  # without training: the model's own
    texts = {name: ["".join(chars) for chars in split.tokens] for name, split in data.splits.items()}
    logger.info(f"Tags: {labels}; texts: " + ", ".join(f"{k} {len(v):,}" for k, v in texts.items()))

    def new_model():  # built again for every fold of --cv_folds and every trial of --hp_search_trials (--crf: with a CRF)
        return tokenizer_and_model(model_args, scratch_args, data_args, labels, texts.get("train", []), True)

    tokenizer, model = new_model()
    max_length = max_input_length(tokenizer, model.config, data_args.max_seq_length)
    features = {name: encode_char_split(texts[name], split.tags, tokenizer, model.config.label2id, max_length,
                                        data_args.stride, name)
                for name, split in data.splits.items()}

    if not cross_validate_or_search(
            run, search_args, settings,
            lambda args: tagger_trainer(new_model()[1], tokenizer, args, features, data.splits, labels),
            lambda: cross_validate_tagger(lambda: new_model()[1], features, data.splits, run, labels, tokenizer)):
        return  # --cv_folds K instead of training, or --hp_search_trials N alone

    # Train, evaluate, predict: entity scores on characters (exact span and type, as CLUENER counts)
    trainer, results, predictions = train_tagger(model, tokenizer, run, features, data.splits, labels,
                                                 validation_predictions=True)

    # Outputs: all_results.json; each predicted split in CLUENER's JSON format, in input order
    if trainer.is_world_process_zero():
        results.update(facts(model_args, scratch_args, data_args, trainer, data, labels, max_length))
        write_tagger_outputs(trainer, results, predictions, settings, "chinese_ernie")
        for split, prediction in predictions.items():
            predicted_tags = features[split].tags(prediction.predictions, labels, tag_decoder(model))
            write_cluener_predictions(Path(trainer.args.output_dir) / f"{split}_predictions.json",
                                      data.splits[split], predicted_tags)


def main(argv=None):
    """Parse the settings, claim the output folder, run the task; leaving the block moves the outputs in."""
    model_args, scratch_args, data_args, training_args, analysis_args, search_args, distill_args, settings = parse_args(
        ARGUMENTS, argv, benchmark_config=BENCHMARK_CONFIG, default_config=CONFIGS / "default.yaml",
        rules=[check_task_options])
    setup_logging(training_args)
    if scratch_args.scratch_model_type and not training_args.do_train:
        logger.warning(f"--do_train False: --scratch_model_type is ignored; model and tokenizer come from --model "
                       f"{model_args.model_name_or_path}")
        scratch_args.scratch_model_type = None
    # The output folder is this run's alone (locked); an earlier run's files stay until the block ends with ours
    with RunFolder.of(training_args) as run:
        set_seed(training_args.seed)  # before the model is built, so the new weights are reproducible
        task = ner if data_args.task == "ner" else classification
        task(run, model_args, scratch_args, data_args, analysis_args, search_args, distill_args, settings)


if __name__ == "__main__":
    run_main(main)
