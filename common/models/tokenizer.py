"""The model's tokenizer, ready for batching: a pad token for decoder-only models, a prefix space for words given one by one."""

import logging

from transformers import AutoConfig, AutoTokenizer

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


def require_fast_tokenizer(tokenizer, model_name: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{model_name}: token classification needs a fast tokenizer (one that gives word_ids); "
                         f"{type(tokenizer).__name__} is not. Use a model with a tokenizer.json, or convert it.")
