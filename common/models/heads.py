"""The pretrained model with a fresh task head, and the label names written into the model config.

`AutoModelForSequenceClassification` puts a linear layer over the pooled output (the [CLS] token for
encoders, the last non-pad token for decoder-only models). `problem_type` picks the loss:
softmax + cross-entropy for single-label, sigmoid + binary cross-entropy per label for multi-label,
MSE on one output for regression.
"""

import re
from pathlib import Path

from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification

from common.config.arguments import parse_layers
from common.config.errors import OptionError
from common.models.crf import CRF_FILE, AutoModelForCRFTagging
from common.models.lora import apply_lora
from common.models.student import keep_layers
from common.models.tokenizer import LOAD_ERRORS, hub_settings, load_error


def label_settings(label_list: list[str]) -> dict:
    """Config fields for a head over `label_list`: names in the saved model, so pipelines show them."""
    return {"num_labels": len(label_list), "id2label": dict(enumerate(label_list)),
            "label2id": {label: i for i, label in enumerate(label_list)}}


def trained_labels(model_args, training_args) -> list[str] | None:
    """Without training (--do_train False): the label names the model's config holds, so a trained output
    folder evaluates and predicts with its own label set. None when this run trains (labels come from data)."""
    if training_args.do_train:
        return None
    name = model_args.model_name_or_path
    try:
        config = AutoConfig.from_pretrained(name, **hub_settings(model_args))
    except LOAD_ERRORS as error:
        raise OptionError(f"--model_name_or_path {name}: cannot load its config ({load_error(name, error)})") from None
    names = [config.id2label[i] for i in range(len(config.id2label or {}))]
    if not names or all(re.fullmatch(r"LABEL_\d+", label) for label in names):
        raise OptionError(f"--do_train False: {name} is not a trained classifier (its config names no labels), so it "
                          "would evaluate a random head: give an output folder of a training run, or train")
    return names


def _load_with_head(auto_class, model_args, label_list: list[str], tokenizer, **config_kwargs):
    hub = hub_settings(model_args)
    try:
        config = AutoConfig.from_pretrained(model_args.model_name_or_path, **label_settings(label_list), **hub,
                                            **config_kwargs)
        config.pad_token_id = tokenizer.pad_token_id
        model = auto_class.from_pretrained(model_args.model_name_or_path, config=config, **hub)
    except LOAD_ERRORS as error:  # no weights, truncated or refused ones, an unknown architecture, no network
        raise OptionError(f"--model_name_or_path {model_args.model_name_or_path}: cannot load the model "
                          f"({load_error(model_args.model_name_or_path, error)})") from None
    if getattr(model_args, "gguf_file", None) and getattr(model, "hf_quantizer", None) is not None:
        # GGUF weights are dequantized to float on load: from here on an ordinary model (Trainer would refuse
        # to train a "quantized" one, and the saved config must not claim a quantization it no longer has)
        model.hf_quantizer.remove_quantization_config(model)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:  # a pad token added to the tokenizer
        model.resize_token_embeddings(len(tokenizer))
    if getattr(model_args, "student_layers", None):
        model = keep_layers(model, parse_layers(model_args.student_layers))
    return apply_lora(model, model_args)


def build_classifier(model_args, label_list: list[str], tokenizer, multi_label: bool = False,
                     regression: bool = False):
    """A pretrained encoder (or decoder) with a fresh classification head over `label_list`, or with
    `regression` one output (`label_list` names it) trained by MSE."""
    problem_type = ("regression" if regression else "multi_label_classification" if multi_label
                    else "single_label_classification")
    return _load_with_head(AutoModelForSequenceClassification, model_args, label_list, tokenizer,
                           problem_type=problem_type)


def token_classifier_class(model_args):
    """The Auto class that builds the run's token classifier: with --crf, one with a CRF over its tags."""
    return AutoModelForCRFTagging if getattr(model_args, "crf", False) else AutoModelForTokenClassification


def load_token_classifier(model_dir: str):
    """A trained token classifier from its output folder, with its CRF when the run trained one (crf.safetensors)."""
    config = AutoConfig.from_pretrained(model_dir)
    auto_class = AutoModelForCRFTagging if (Path(model_dir) / CRF_FILE).is_file() else AutoModelForTokenClassification
    return auto_class.from_pretrained(model_dir, config=config)


def tag_decoder(model):
    """How a token classifier reads a sentence's tags from its (units, tags) scores, if it has a way of its own (a
    CRF tagger: Viterbi); None for each unit's best tag."""
    return getattr(model, "decode_tags", None)


def decoding_of(model) -> str:
    """How the model's tags are decoded, for all_results.json and the model card."""
    return getattr(model, "decoding", "softmax: each word's best tag")


def build_token_classifier(model_args, label_list: list[str], tokenizer):
    """A pretrained encoder with a fresh per-token head over the tags in `label_list` (`token_classifier_class`)."""
    return _load_with_head(token_classifier_class(model_args), model_args, label_list, tokenizer)
