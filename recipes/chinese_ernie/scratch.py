"""The Chinese recipe's model: a pretrained one with a new head, or a small one built from scratch with a
character vocabulary from the training texts (common/models/scratch.py)."""

import logging

from transformers import AutoModelForSequenceClassification

from common.models.heads import build_classifier, build_token_classifier, label_settings, token_classifier_class
from common.models.tokenizer import load_tokenizer, require_fast_tokenizer
from common.models.scratch import character_tokenizer, describe, scratch_config
from common.outputs.all_results import run_facts

logger = logging.getLogger(__name__)


def scratch_model(auto_class, scratch_args, label_list: list[str], tokenizer):
    """A randomly initialised `scratch_args.scratch_model_type` model with a head over `label_list`."""
    config = scratch_config(scratch_args, tokenizer, **label_settings(label_list))
    model = auto_class.from_config(config)
    logger.info(f"New {config.model_type} model from scratch: {config.num_hidden_layers} layers, hidden "
                f"{config.hidden_size}, {model.num_parameters():,} parameters")
    return model


def tokenizer_and_model(model_args, scratch_args, data_args, labels, train_texts, token_level: bool):
    """A pretrained tokenizer and model with a new head, or (scratch_model_type) new ones."""
    if scratch_args.scratch_model_type:
        tokenizer = character_tokenizer(train_texts, scratch_args.vocab_min_count, data_args.max_seq_length or 512)
        auto_class = token_classifier_class(model_args) if token_level else AutoModelForSequenceClassification
        return tokenizer, scratch_model(auto_class, scratch_args, labels, tokenizer)
    tokenizer = load_tokenizer(model_args)
    if token_level:
        require_fast_tokenizer(tokenizer, model_args.model_name_or_path)  # offsets come from fast tokenizers
        return tokenizer, build_token_classifier(model_args, labels, tokenizer)
    return tokenizer, build_classifier(model_args, labels, tokenizer)


def facts(model_args, scratch_args, data_args, trainer, data, labels, max_length, tokenized=None) -> dict:
    """run_facts, with the task and, for a model built from scratch, its description."""
    facts = run_facts(model_args, data_args, trainer, data, labels, max_length, tokenized)
    return {**facts, "task": data_args.task,
            **({"model": describe(scratch_args)} if scratch_args.scratch_model_type else {})}
