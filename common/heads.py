"""Tokenizer and model with the task head, and the label names written into the model config.

`AutoModelForSequenceClassification` puts a linear layer over the pooled output (the [CLS] token for
encoders, the last non-pad token for decoder-only models). `problem_type` picks the loss:
softmax + cross-entropy for single-label, sigmoid + binary cross-entropy per label for multi-label.
"""

import logging

from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

logger = logging.getLogger(__name__)


# Byte-level BPE tokenizers mark a word start with a space; words given one by one need it added.
PREFIX_SPACE_MODELS = {"roberta", "gpt2", "bloom", "deberta", "longformer", "bart", "mvp"}


def load_tokenizer(model_args, words_given: bool = False):
    """The model's tokenizer; `words_given` for pre-split words (token classification)."""
    kwargs = {}
    if words_given:
        model_type = AutoConfig.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir,
                                                revision=model_args.model_revision,
                                                trust_remote_code=model_args.trust_remote_code).model_type
        if model_type in PREFIX_SPACE_MODELS:
            kwargs["add_prefix_space"] = True
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.tokenizer_name or model_args.model_name_or_path,
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        trust_remote_code=model_args.trust_remote_code,
        **kwargs,
    )
    if tokenizer.pad_token is None:
        # Decoder-only models (GPT-2, Llama, ...) ship without a pad token; batching needs one, and the
        # classification head finds each row's last real token by looking for it.
        if tokenizer.eos_token is None:
            raise ValueError(f"{model_args.model_name_or_path}: the tokenizer has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
        logger.info(f"The tokenizer has no pad token: using its EOS token {tokenizer.eos_token!r}")
    return tokenizer


def label_settings(label_list: list[str]) -> dict:
    """Config fields for a head over `label_list`: names in the saved model, so pipelines show them."""
    return {"num_labels": len(label_list), "id2label": dict(enumerate(label_list)),
            "label2id": {label: i for i, label in enumerate(label_list)}}


def _load_with_head(auto_class, model_args, label_list: list[str], tokenizer, **config_kwargs):
    config = AutoConfig.from_pretrained(
        model_args.model_name_or_path,
        **label_settings(label_list),
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        trust_remote_code=model_args.trust_remote_code,
        **config_kwargs,
    )
    config.pad_token_id = tokenizer.pad_token_id
    return auto_class.from_pretrained(
        model_args.model_name_or_path,
        config=config,
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        trust_remote_code=model_args.trust_remote_code,
    )


def build_classifier(model_args, label_list: list[str], tokenizer, multi_label: bool = False):
    """A pretrained encoder (or decoder) with a fresh classification head over `label_list`."""
    problem_type = "multi_label_classification" if multi_label else "single_label_classification"
    return _load_with_head(AutoModelForSequenceClassification, model_args, label_list, tokenizer,
                           problem_type=problem_type)


def build_token_classifier(model_args, label_list: list[str], tokenizer):
    """A pretrained encoder with a fresh per-token head over the tags in `label_list`."""
    return _load_with_head(AutoModelForTokenClassification, model_args, label_list, tokenizer)
