"""Fine-tune a pretrained encoder for named entity recognition (benchmark: CoNLL-2003).

    python recipes/ner/run.py --model bert-base-cased --data_dir ../shared/data --output_dir out/ner
    python recipes/ner/run.py --train_file train.txt --validation_file dev.txt --tag_scheme bioes --output_dir out/mine
    accelerate launch recipes/ner/run.py --model bert-base-cased
    torchrun --nproc_per_node 2 recipes/ner/run.py --model bert-base-cased --output_dir out/ddp

Scores are entity-level (seqeval) and always on words: each word is predicted from its first subword,
and sentences longer than the model's maximum are split into overlapping windows, never cut.
"""

import logging
from pathlib import Path

from transformers import set_seed

from common.config.arguments import RecipeTrainingArguments, SearchArguments, TaggerModelArguments, TokenDataArguments
from common.config.parsing import parse_args
from common.config.process import run_main, setup_logging
from common.data.tagged import load_tagged_data, tag_set
from common.models.heads import build_token_classifier, tag_decoder, trained_labels
from common.models.tokenizer import load_tokenizer, require_fast_tokenizer
from common.outputs.all_results import run_facts
from common.outputs.predictions import write_entities, write_tagged_predictions
from common.steps import cross_validate_or_search, write_tagger_outputs
from common.tokens.tokenization import max_input_length
from common.tokens.word_labels import encode_tagged_split
from common.training.cross_validation import cross_validate_tagger
from common.training.output_dir import RunFolder
from common.training.stages import tagger_trainer, train_tagger

ARGUMENTS = (TaggerModelArguments, TokenDataArguments, RecipeTrainingArguments, SearchArguments)
CONFIGS = Path(__file__).parent / "configs"
BENCHMARK_CONFIG = CONFIGS / "conll2003.yaml"  # used when the command line names no data
logger = logging.getLogger(__name__)


def main(argv=None):
    """Entities in sentences of words: settings, output folder, data, model, training and outputs (the test
    file's layout, entities.jsonl), top to bottom."""
    model_args, data_args, training_args, search_args, settings = parse_args(
        ARGUMENTS, argv, benchmark_config=BENCHMARK_CONFIG, default_config=CONFIGS / "default.yaml")
    setup_logging(training_args)
    # The output folder is this run's alone (locked); an earlier run's files stay until the block ends with ours
    with RunFolder.of(training_args) as run:
        set_seed(training_args.seed)  # before the model is built, so the new head's weights are reproducible

        # Data: sentences of words with IOB2 tags (other schemes converted on load); the tag set from train
        data = load_tagged_data(data_args)
        labels = tag_set(data, trained_labels(model_args, training_args))  # without training: the model's own
        logger.info(f"Tags: {labels}; sentences: " + ", ".join(f"{k} {len(v.tokens):,}" for k, v in data.splits.items()))

        # Model: the pretrained encoder with a fresh per-token head (and with --crf a CRF), tag names in its config
        tokenizer = load_tokenizer(model_args, words_given=True)
        require_fast_tokenizer(tokenizer, model_args.model_name_or_path)

        def new_model():  # built again for every fold of --cv_folds and every trial of --hp_search_trials
            return build_token_classifier(model_args, labels, tokenizer)

        model = new_model()
        max_length = max_input_length(tokenizer, model.config, data_args.max_seq_length)
        label2id = model.config.label2id
        features = {name: encode_tagged_split(split.tokens, split.tags, tokenizer, label2id, max_length,
                                              data_args.stride, data_args.label_all_tokens, name)
                    for name, split in data.splits.items()}

        # --cv_folds K instead of training, or --hp_search_trials N before it
        if not cross_validate_or_search(
                run, search_args, settings,
                lambda args: tagger_trainer(new_model(), tokenizer, args, features, data.splits, labels),
                lambda: cross_validate_tagger(new_model, features, data.splits, run, labels, tokenizer)):
            return

        # Train, evaluate, predict: metrics on the words of each split
        trainer, results, predictions = train_tagger(model, tokenizer, run, features, data.splits, labels)

        # Outputs: all_results.json, model card, plots; predictions in the test file's own layout, and entities
        if trainer.is_world_process_zero():
            results.update(run_facts(model_args, data_args, trainer, data, labels, max_length))
            write_tagger_outputs(trainer, results, predictions, settings, "ner")
            if "test" in predictions:
                predicted_tags = features["test"].tags(predictions["test"].predictions, labels, tag_decoder(model))
                write_tagged_predictions(training_args.output_dir, data.splits["test"], predicted_tags)
                write_entities(Path(training_args.output_dir) / "entities.jsonl", data.splits["test"], predicted_tags)


if __name__ == "__main__":
    run_main(main)
