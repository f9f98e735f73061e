"""The model to pretrain: a new one with a character vocabulary from the corpus, or a pretrained one with its
masked-language-model head."""

import functools
import itertools
import logging

import torch
from transformers import AutoConfig, AutoModelForMaskedLM
from transformers.models.auto.auto_factory import _get_model_class
from transformers.modeling_outputs import MaskedLMOutput

from common.config.errors import OptionError
from common.data.errors import DataError
from common.models.scratch import SPECIAL_TOKENS, character_tokenizer, scratch_config
from common.models.tokenizer import LOAD_ERRORS, hub_settings, load_error, load_tokenizer
from common.tokens.tokenization import max_input_length

from corpus import documents_of  # this folder's module: run.py put the folder on sys.path

logger = logging.getLogger(__name__)

MIN_VOCABULARY = 20  # characters: fewer cannot be a language model of anything
MLM_HEADS = ("cls", "lm_head")  # the head's attribute: BERT, ERNIE, ELECTRA...; RoBERTa, XLM-R, DeBERTa...


def tokenizer_and_model(model_args, scratch_args, data_args, train_files, every: int, cls_objective: bool = False):
    """The tokenizer and masked-language model to train, new (scratch_model_type) or pretrained, built to score
    the masked positions only (`masked_positions_class`; with `cls_objective`, [CLS] too)."""
    if scratch_args.scratch_model_type:
        # the vocabulary comes from the training documents (not the held-out ones)
        part = "train" if every else "all"
        texts = itertools.chain.from_iterable(documents_of(path, data_args.encoding, part, every, data_args.text_column)
                                              for path in train_files)
        # no ## copies of Han characters: a Chinese tokenizer never continues a word with one, and each would add
        # a row to the output layer that every masked token is scored against
        tokenizer = character_tokenizer(texts, scratch_args.vocab_min_count, max(512, data_args.max_seq_length),
                                        han_continuations=False)
        characters = sum(not token.startswith("##") for token in tokenizer.get_vocab()) - len(SPECIAL_TOKENS)
        if characters < MIN_VOCABULARY:
            raise DataError(f"{', '.join(map(str, train_files))}: {characters} characters seen at least "
                            f"{scratch_args.vocab_min_count} times, too few to train a language model (at least "
                            f"{MIN_VOCABULARY}): give more text or lower --vocab_min_count")
        config = scratch_config(scratch_args, tokenizer)
        model = masked_lm_class(config, cls_ids(tokenizer, cls_objective))._from_config(config)
        check_mlm_head(model, cls_objective)
        logger.info(f"New {model.config.model_type} model from scratch: {model.config.num_hidden_layers} layers, "
                    f"hidden {model.config.hidden_size}, {model.num_parameters():,} parameters")
        return tokenizer, model
    name = model_args.model_name_or_path
    tokenizer = load_tokenizer(model_args)
    if tokenizer.mask_token is None:
        raise OptionError(f"--model_name_or_path {name}: its tokenizer has no mask token, so it cannot be trained as "
                          "a masked language model (a decoder? this recipe trains encoders such as BERT or ERNIE)")
    try:
        config = AutoConfig.from_pretrained(name, **hub_settings(model_args))
        model_class = masked_lm_class(config, cls_ids(tokenizer, cls_objective))
        model = model_class.from_pretrained(name, config=config, **hub_settings(model_args))
    except LOAD_ERRORS as error:
        raise OptionError(f"--model_name_or_path {name}: cannot load it as a masked language model "
                          f"({load_error(name, error)})") from None
    check_mlm_head(model, cls_objective)
    return tokenizer, model


def cls_ids(tokenizer, cls_objective: bool) -> tuple[int, ...] | None:
    """The special token ids the bag-of-tokens [CLS] objective leaves out, or None without that objective."""
    return tuple(tokenizer.all_special_ids) if cls_objective else None


def check_block_length(block_length: int, tokenizer, config) -> None:
    """A block must fit in the model's position table."""
    limit = max_input_length(tokenizer, config, None)
    if block_length > limit:
        raise OptionError(f"--max_seq_length {block_length} is above the model's position limit ({limit} tokens): "
                          f"give at most {limit}")


def set_dropout(model, probability: float | None) -> None:
    """Every dropout layer's probability for this run only: the config, which fine-tuning reads, keeps the
    model's own (attention implementations read the probability from the layer, as BERT's does)."""
    if probability is None:
        return
    layers = [module for module in model.modules() if isinstance(module, torch.nn.Dropout)]
    for layer in layers:
        layer.p = probability
    logger.info(f"Dropout {probability} in {len(layers)} dropout layers while pretraining (the saved config keeps "
                f"the model's own for fine-tuning)")


def has_mlm_head(model) -> bool:
    """Whether the model's MLM head is found (under one of MLM_HEADS), so that only masked positions are scored."""
    return any(isinstance(getattr(model, name, None), torch.nn.Module) for name in MLM_HEADS)


def check_mlm_head(model, cls_objective: bool) -> None:
    """Say when the masked positions cannot be scored alone; refuse --cls_objective without a head to use."""
    if has_mlm_head(model):
        return
    if cls_objective:
        raise OptionError(f"--cls_objective bag_of_tokens: {type(model).__name__} has no MLM head under "
                          f"{MLM_HEADS} to predict the tokens from [CLS] with")
    logger.info(f"{type(model).__name__}: no MLM head found under {MLM_HEADS}; every position is scored")


def bag_of_tokens_loss(cls_scores, tokens, attention_mask, special_ids: tuple[int, ...]):
    """Cross-entropy of the [CLS] scores against each block's token frequencies, special tokens left out."""
    counted = ~torch.isin(tokens, torch.tensor(special_ids, device=tokens.device))
    if attention_mask is not None:
        counted &= attention_mask.bool()
    counts = torch.zeros(cls_scores.shape, device=tokens.device)
    counts.scatter_add_(1, tokens * counted, counted.float())  # uncounted positions add 0 to token 0
    frequencies = counts / counts.sum(1, keepdim=True).clamp(min=1)
    return -(frequencies * torch.log_softmax(cls_scores.float(), -1)).sum(1).mean()


def masked_lm_class(config, cls_special_ids: tuple[int, ...] | None = None) -> type:
    """The masked language model class AutoModelForMaskedLM builds for `config`, scoring masked positions only
    (`masked_positions_class`)."""
    return masked_positions_class(_get_model_class(config, AutoModelForMaskedLM._model_mapping), cls_special_ids)


@functools.cache
def masked_positions_class(base: type, cls_special_ids: tuple[int, ...] | None = None) -> type:
    """`base` with a training loss that scores only the masked positions: the same loss (a mean over the masked
    tokens), without computing the output layer, a vocabulary-sized matrix product, for the 85% of positions
    that predict nothing. The output layer dominates a small model's cost (2 layers of hidden 128 against a
    7,000-character vocabulary: three quarters of the work). Without labels (pipeline(), inference), or without
    an MLM head under MLM_HEADS, the forward is the base's; the saved config names the base.

    With `cls_special_ids` (the tokenizer's special token ids), training adds `--cls_objective bag_of_tokens`:
    the same head, applied to each block's final [CLS] vector, predicts the block's other tokens (cross-entropy
    against their frequencies)."""

    class MaskedPositionsOnly(base):
        accepts_loss_kwargs = False  # the loss is the mean over the batch's masked tokens, as the base's is

        def forward(self, input_ids=None, attention_mask=None, labels=None, **inputs):
            """The base's forward without labels; with them, the loss and the masked positions' scores."""
            if labels is None or not has_mlm_head(self):
                return super().forward(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **inputs)
            hidden = self.base_model(input_ids=input_ids, attention_mask=attention_mask, **inputs)[0]
            selected = labels != -100
            head = next(getattr(self, name) for name in MLM_HEADS if isinstance(getattr(self, name, None), torch.nn.Module))
            scores = head(hidden[selected])
            loss = torch.nn.functional.cross_entropy(scores.float(), labels[selected])
            if cls_special_ids is not None and self.training:  # held out: the MLM loss alone, as without it
                tokens = torch.where(selected, labels, input_ids)  # the block as it was before masking
                loss = loss + bag_of_tokens_loss(head(hidden[:, 0]), tokens, attention_mask, cls_special_ids)
            return MaskedLMOutput(loss=loss, logits=scores)

    MaskedPositionsOnly.__name__ = MaskedPositionsOnly.__qualname__ = base.__name__  # the saved config names the base
    return MaskedPositionsOnly
