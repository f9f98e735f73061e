"""The model's tokenizer, ready for batching: a pad token for decoder-only models, a prefix space for words given one by one."""

import logging
from pathlib import Path

from transformers import AutoConfig, AutoTokenizer

from common.config.errors import OptionError

logger = logging.getLogger(__name__)

MIN_ORDINARY_TOKENS = 10  # fewer besides [CLS], [PAD], ...: no vocabulary was found (real ones hold thousands)


# Byte-level BPE tokenizers mark a word start with a space; words given one by one need it added.
PREFIX_SPACE_MODELS = {"roberta", "gpt2", "bloom", "deberta", "longformer", "bart", "mvp"}


def load_error(name: str, error: Exception) -> str:
    """Why loading `name` failed, in a few words: a missing local folder, or the library's first line."""
    if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().exists():
        return "no such folder"
    return str(error).splitlines()[0]


def load_tokenizer(model_args, words_given: bool = False):
    """The model's tokenizer; `words_given` for pre-split words (token classification)."""
    kwargs = {}
    name = model_args.tokenizer_name or model_args.model_name_or_path
    try:
        if words_given:
            model_type = AutoConfig.from_pretrained(model_args.model_name_or_path, cache_dir=model_args.cache_dir,
                                                    revision=model_args.model_revision,
                                                    trust_remote_code=model_args.trust_remote_code).model_type
            if model_type in PREFIX_SPACE_MODELS:
                kwargs["add_prefix_space"] = True
        tokenizer = AutoTokenizer.from_pretrained(name, cache_dir=model_args.cache_dir,
                                                  revision=model_args.model_revision,
                                                  trust_remote_code=model_args.trust_remote_code, **kwargs)
    except (OSError, ValueError) as error:  # no such folder or Hub model, no network, files it cannot read
        raise OptionError(f"--model_name_or_path/--tokenizer_name {name}: cannot load its tokenizer "
                          f"({load_error(name, error)})") from None
    ordinary = len(tokenizer) - len(set(tokenizer.all_special_ids))
    if ordinary < MIN_ORDINARY_TOKENS:
        # transformers builds an empty tokenizer from a folder with a model but no tokenizer files: every
        # word would become [UNK], and the run would train on nothing without a word of warning.
        raise OptionError(f"{name}: its tokenizer knows only {len(tokenizer)} tokens ({ordinary} besides special "
                          "tokens): the folder has no tokenizer files (tokenizer.json, vocab.txt, ...). Copy them from "
                          "the model it came from, or give that model's name with --tokenizer_name")
    if tokenizer.pad_token is None:
        # Decoder-only models (GPT-2, Llama, ...) ship without a pad token; batching needs one, and the
        # classification head finds each row's last real token by looking for it.
        if tokenizer.eos_token is None:
            raise OptionError(f"{model_args.model_name_or_path}: the tokenizer has neither a pad nor an EOS token")
        tokenizer.pad_token = tokenizer.eos_token
        logger.info(f"The tokenizer has no pad token: using its EOS token {tokenizer.eos_token!r}")
    return tokenizer


def require_fast_tokenizer(tokenizer, model_name: str) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise OptionError(f"{model_name}: token classification needs a fast tokenizer (one that gives word_ids); "
                         f"{type(tokenizer).__name__} is not. Use a model with a tokenizer.json, or convert it.")
