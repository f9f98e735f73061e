"""The pretrained model with a fresh task head, and the label names written into the model config.

`AutoModelForSequenceClassification` puts a linear layer over the pooled output (the [CLS] token for
encoders, the last non-pad token for decoder-only models). `problem_type` picks the loss:
softmax + cross-entropy for single-label, sigmoid + binary cross-entropy per label for multi-label.
"""

from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification


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
