"""LoRA adapters through peft (`--lora_r`): low-rank updates on chosen linear layers, the rest frozen.

The task head (`classifier` or `score`) stays fully trainable (peft's `modules_to_save`). At the end
of training the adapters are merged into the weights, so the output folder is an ordinary model that
`pipeline()` loads without peft; the adapter alone goes to `adapter/` beside it (RecipeTrainer.save_final_model).
"""

import logging

from torch import nn

from common.config.errors import OptionError, require_extra

logger = logging.getLogger(__name__)

# Attention projections of the usual architectures (the LoRA paper's choice); others: --lora_target_modules.
DEFAULT_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"], "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"], "qwen3": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj"], "gpt2": ["c_attn", "c_proj"],
    "bert": ["query", "key", "value"], "ernie": ["query", "key", "value"], "roberta": ["query", "key", "value"],
    "electra": ["query", "key", "value"], "distilbert": ["q_lin", "k_lin", "v_lin"],
}
HEADS = ("classifier", "score")


def parameter_counts(model) -> dict:
    """Trainable and total parameters, for the log, all_results.json and the model card."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable_parameters": trainable, "total_parameters": sum(p.numel() for p in model.parameters())}


def apply_lora(model, model_args):
    """The model with LoRA adapters (a peft model) when --lora_r is set; else the model itself."""
    if not getattr(model_args, "lora_r", 0):
        return model
    require_extra("peft", "--lora_r", "decoder")
    from peft import LoraConfig, TaskType, get_peft_model

    model_type = model.config.model_type
    if model_args.lora_target_modules:
        targets = [t.strip() for t in model_args.lora_target_modules.split(",") if t.strip()]
    elif model_type in DEFAULT_TARGETS:
        targets = DEFAULT_TARGETS[model_type]
    else:
        raise OptionError(f"--lora_r: no default LoRA modules for model type {model_type!r}; name them with "
                          "--lora_target_modules")
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                     if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"})
    unknown = [t for t in targets if t not in linear]
    if unknown:
        raise OptionError(f"--lora_target_modules: {', '.join(unknown)} names no linear layer of this model (its "
                          f"linear layers: {', '.join(linear)})")
    heads = [name for name in HEADS if hasattr(model, name)]
    task = TaskType.TOKEN_CLS if type(model).__name__.endswith("ForTokenClassification") else TaskType.SEQ_CLS
    config = LoraConfig(task_type=task, r=model_args.lora_r,
                        lora_alpha=model_args.lora_alpha if model_args.lora_alpha is not None else 2 * model_args.lora_r,
                        lora_dropout=model_args.lora_dropout if model_args.lora_dropout is not None else 0.05,
                        target_modules=targets, modules_to_save=list(heads))  # peft adds to it
    model = get_peft_model(model, config)
    counts = parameter_counts(model)
    logger.info(f"LoRA r={config.r} alpha={config.lora_alpha} on {', '.join(targets)} (head {', '.join(heads)} "
                f"fully trained): {counts['trainable_parameters']:,} of {counts['total_parameters']:,} parameters "
                f"trainable ({counts['trainable_parameters'] / counts['total_parameters']:.2%})")
    return model


def is_lora(model) -> bool:
    """Whether `model` is a peft model (LoRA adapters around the base model)."""
    return type(model).__module__.startswith("peft.")
