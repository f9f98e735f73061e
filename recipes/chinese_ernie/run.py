"""Fine-tune ERNIE (or a Chinese BERT) for classification or character-level NER.

    python recipes/chinese_ernie/run.py --config recipes/chinese_ernie/configs/chnsenticorp.yaml --output_dir out/c
    python recipes/chinese_ernie/run.py --config recipes/chinese_ernie/configs/cluener.yaml --model hfl/chinese-macbert-base
    python recipes/chinese_ernie/run.py --config recipes/chinese_ernie/configs/chnsenticorp_scratch.yaml   (offline)

`task: classification` trains on texts with a label (ChnSentiCorp); `task: ner` on texts with entity
spans (CLUENER2020 JSON lines, or character-per-line BIO files). NER is exact on characters: labels go
through the tokenizer's offsets, so every character gets one tag and entities come back at their
original offsets, whatever the tokenizer does to spaces, Latin words, digits or case.
With `scratch_model_type`, a small model is built from a config with a character vocabulary taken from
the training texts, instead of loading a pretrained one.
"""

import logging
import sys
from pathlib import Path

from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, set_seed

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # make `common` importable when run as a script

from common.char_alignment import encode_char_split
from common.alignment import require_fast_tokenizer
from common.config import (ChineseDataArguments, ModelArguments, RecipeTrainingArguments, ScratchArguments, parse_args,
                           run_main, setup_logging)
from common.data import load_data
from common.heads import build_classifier, build_token_classifier, load_tokenizer
from common.labels import build_label_list, encode_labels
from common.metrics import classification_metrics
from common.results import run_facts, write_all_results, write_classification_predictions
from common.run_report import write_run_report
from common.scratch import character_tokenizer, describe, scratch_model
from common.span_data import read_char_file, write_cluener_predictions
from common.tagging import label_list_for
from common.token_data import check_tags_known, load_tagged_data
from common.tokenization import max_input_length, tokenize_splits
from common.training import build_trainer, train_evaluate_predict, train_tagger

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "chnsenticorp.yaml"
logger = logging.getLogger(__name__)


def tokenizer_and_model(model_args, scratch_args, data_args, labels, train_texts, token_level: bool):
    """A pretrained tokenizer and model with a new head, or (scratch_model_type) new ones."""
    if scratch_args.scratch_model_type:
        tokenizer = character_tokenizer(train_texts, scratch_args.vocab_min_count, data_args.max_seq_length or 512)
        auto_class = AutoModelForTokenClassification if token_level else AutoModelForSequenceClassification
        return tokenizer, scratch_model(auto_class, scratch_args, labels, tokenizer)
    tokenizer = load_tokenizer(model_args)
    if token_level:
        require_fast_tokenizer(tokenizer, model_args.model_name_or_path)  # offsets come from fast tokenizers
        return tokenizer, build_token_classifier(model_args, labels, tokenizer)
    return tokenizer, build_classifier(model_args, labels, tokenizer)


def facts(model_args, scratch_args, data_args, training_args, data, labels, max_length) -> dict:
    facts = run_facts(model_args, data_args, training_args, data, labels, max_length)
    return {**facts, "task": data_args.task,
            **({"model": describe(scratch_args)} if scratch_args.scratch_model_type else {})}


def classification(model_args, scratch_args, data_args, training_args):
    # Data: rows checked, labels mapped to ids (ChnSentiCorp has train, dev and test files)
    raw = load_data(data_args, seed=training_args.seed)
    labels = build_label_list(raw)
    encode_labels(raw, labels)
    train_texts = raw.splits["train"].frame[data_args.text_column] if "train" in raw.splits else []
    tokenizer, model = tokenizer_and_model(model_args, scratch_args, data_args, labels, train_texts, False)
    max_length = max_input_length(tokenizer, model.config, data_args.max_seq_length)
    with training_args.main_process_first(desc="tokenization"):
        tokenized = tokenize_splits(raw, tokenizer, max_length, data_args.pad_to_max_length, data_args.overwrite_cache)

    trainer = build_trainer(model, training_args, tokenizer, tokenized.get("train"), tokenized.get("validation"),
                            classification_metrics(labels))
    results, predictions = train_evaluate_predict(trainer, tokenized, training_args, validation_predictions=True)

    if trainer.is_world_process_zero():
        results.update(facts(model_args, scratch_args, data_args, training_args, raw, labels, max_length))
        write_all_results(training_args.output_dir, results)
        write_run_report(training_args.output_dir, results, training_args, trainer.state.log_history, "classification",
                         predictions.get("validation"), recipe="chinese_ernie")
        if "test" in predictions:
            write_classification_predictions(Path(training_args.output_dir) / "predictions.csv", raw, "test",
                                             predictions["test"].predictions, labels)


def ner(model_args, scratch_args, data_args, training_args):
    # Data: texts with character-level IOB2 tags, every span checked against its text on load
    data = load_tagged_data(data_args, reader=lambda path: read_char_file(path, data_args.overlapping_spans))
    labels = label_list_for((data.splits.get("train") or data.splits["validation"]).tags)
    check_tags_known(data, labels)
    texts = {name: ["".join(chars) for chars in split.tokens] for name, split in data.splits.items()}
    logger.info(f"Tags: {labels}; texts: " + ", ".join(f"{k} {len(v):,}" for k, v in texts.items()))
    tokenizer, model = tokenizer_and_model(model_args, scratch_args, data_args, labels, texts.get("train", []), True)
    max_length = max_input_length(tokenizer, model.config, data_args.max_seq_length)
    features = {name: encode_char_split(texts[name], split.tags, tokenizer, model.config.label2id, max_length,
                                        data_args.stride, name)
                for name, split in data.splits.items()}

    # Train, evaluate, predict: entity scores on characters (exact span and type, as CLUENER counts)
    trainer, results, predictions = train_tagger(model, tokenizer, training_args, features, data.splits, labels,
                                                 validation_predictions=True)

    # Outputs: all_results.json; each predicted split in CLUENER's JSON format, in input order
    if trainer.is_world_process_zero():
        results.update(facts(model_args, scratch_args, data_args, training_args, data, labels, max_length))
        write_all_results(training_args.output_dir, results)
        write_run_report(training_args.output_dir, results, training_args, trainer.state.log_history, "ner",
                         predictions.get("validation"), recipe="chinese_ernie")
        for split, prediction in predictions.items():
            predicted_tags = features[split].tags(prediction.predictions, labels)
            write_cluener_predictions(Path(training_args.output_dir) / f"{split}_predictions.json",
                                      data.splits[split], predicted_tags)


def main(argv=None):
    model_args, scratch_args, data_args, training_args = parse_args(
        str(DEFAULT_CONFIG), argv, (ModelArguments, ScratchArguments, ChineseDataArguments, RecipeTrainingArguments))
    setup_logging(training_args)
    set_seed(training_args.seed)  # before the model is built, so the new weights are reproducible
    task = ner if data_args.task == "ner" else classification
    task(model_args, scratch_args, data_args, training_args)


if __name__ == "__main__":
    run_main(main)
