"""Tokenizer and model with the task head, and the label names written into the model config.

`AutoModelForSequenceClassification` puts a linear layer over the pooled output (the [CLS] token for
encoders, the last non-pad token for decoder-only models). `problem_type` picks the loss:
softmax + cross-entropy for single-label, sigmoid + binary cross-entropy per label for multi-label.
"""

import logging

from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

logger = logging.getLogger(__name__)


def load_tokenizer(model_args):
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.tokenizer_name or model_args.model_name_or_path,
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        trust_remote_code=model_args.trust_remote_code,
    )
    if tokenizer.pad_token is None:
        # Decoder-only models (GPT-2, Llama, ...) ship without a pad token; batching needs one, and the
        # classification head finds each row's last real token by looking for it.
        if tokenizer.eos_token is None:
            raise ValueError(f"{model_args.model_name_or_path}: the tokenizer has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
        logger.info(f"The tokenizer has no pad token: using its EOS token {tokenizer.eos_token!r}")
    return tokenizer


def build_classifier(model_args, label_list: list[str], tokenizer, multi_label: bool = False):
    """A pretrained encoder (or decoder) with a fresh classification head over `label_list`."""
    config = AutoConfig.from_pretrained(
        model_args.model_name_or_path,
        num_labels=len(label_list),
        id2label=dict(enumerate(label_list)),
        label2id={label: i for i, label in enumerate(label_list)},
        problem_type="multi_label_classification" if multi_label else "single_label_classification",
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        trust_remote_code=model_args.trust_remote_code,
    )
    config.pad_token_id = tokenizer.pad_token_id
    model = AutoModelForSequenceClassification.from_pretrained(
        model_args.model_name_or_path,
        config=config,
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        trust_remote_code=model_args.trust_remote_code,
    )
    return model
