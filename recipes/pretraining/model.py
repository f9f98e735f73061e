"""The model to pretrain: a new one with a character vocabulary from the corpus, or a pretrained one with its
masked-language-model head."""

import itertools
import logging

from transformers import AutoModelForMaskedLM

from common.config.errors import OptionError
from common.data.errors import DataError
from common.models.scratch import SPECIAL_TOKENS, character_tokenizer, scratch_config
from common.models.tokenizer import LOAD_ERRORS, hub_settings, load_error, load_tokenizer
from common.tokens.tokenization import max_input_length
from recipes.pretraining.corpus import documents_of

logger = logging.getLogger(__name__)

MIN_VOCABULARY = 20  # characters: fewer cannot be a language model of anything


def tokenizer_and_model(model_args, scratch_args, data_args, train_files, every: int):
    """The tokenizer and masked-language model to train: new (scratch_model_type) or pretrained."""
    if scratch_args.scratch_model_type:
        # the vocabulary comes from the training documents (not the held-out ones)
        texts = itertools.chain.from_iterable(documents_of(path, data_args.encoding, "train" if every else "all", every)
                                              for path in train_files)
        tokenizer = character_tokenizer(texts, scratch_args.vocab_min_count, max(512, data_args.max_seq_length))
        characters = (len(tokenizer) - len(SPECIAL_TOKENS)) // 2
        if characters < MIN_VOCABULARY:
            raise DataError(f"{', '.join(map(str, train_files))}: {characters} characters seen at least "
                            f"{scratch_args.vocab_min_count} times, too few to train a language model (at least "
                            f"{MIN_VOCABULARY}): give more text or lower --vocab_min_count")
        model = AutoModelForMaskedLM.from_config(scratch_config(scratch_args, tokenizer))
        logger.info(f"New {model.config.model_type} model from scratch: {model.config.num_hidden_layers} layers, "
                    f"hidden {model.config.hidden_size}, {model.num_parameters():,} parameters")
        return tokenizer, model
    name = model_args.model_name_or_path
    tokenizer = load_tokenizer(model_args)
    if tokenizer.mask_token is None:
        raise OptionError(f"--model_name_or_path {name}: its tokenizer has no mask token, so it cannot be trained as "
                          "a masked language model (a decoder? this recipe trains encoders such as BERT or ERNIE)")
    try:
        model = AutoModelForMaskedLM.from_pretrained(name, **hub_settings(model_args))
    except LOAD_ERRORS as error:
        raise OptionError(f"--model_name_or_path {name}: cannot load it as a masked language model "
                          f"({load_error(name, error)})") from None
    return tokenizer, model


def check_block_length(block_length: int, tokenizer, config) -> None:
    """A block must fit in the model's position table."""
    limit = max_input_length(tokenizer, config, None)
    if block_length > limit:
        raise OptionError(f"--max_seq_length {block_length} is above the model's position limit ({limit} tokens): "
                          f"give at most {limit}")
