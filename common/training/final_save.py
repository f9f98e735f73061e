"""The final model folder of a training run, loadable by `pipeline()` as it is, written without changing the model.

- A plain model: Trainer's own `save_model` (the best checkpoint's weights if load_best_model_at_end).
- A model that keeps some weights in a file of their own (`save_beside`: a CRF tagger's transitions in
  crf.safetensors, common/models/crf.py): the others, as the plain model its config names (pipeline() loads
  a CRF tagger's emissions alone).
- LoRA (a peft model): the adapters merged into a copy of the model, and the adapter alone in adapter/.

Checkpoints go through Trainer's own saving, which keeps the adapters and the CRF inside (for resuming and
for the best model); only this final save leaves them out.
"""

import copy
import logging
import os
from pathlib import Path

import torch
from transformers.trainer import TRAINING_ARGS_NAME

from common.models.lora import is_lora

logger = logging.getLogger(__name__)


def save_final_model(trainer, output_dir=None) -> None:
    """Write the final folder of `trainer`'s model into `output_dir` (default: its --output_dir)."""
    output_dir = str(output_dir or trainer.args.output_dir)
    model = trainer.model
    if is_lora(model):
        if trainer.args.should_save:
            model.save_pretrained(os.path.join(output_dir, "adapter"))
            _write_folder(trainer, copy.deepcopy(model).merge_and_unload(), None, output_dir)
            logger.info(f"LoRA adapters merged into the model saved in {output_dir} (the adapter alone: "
                        f"{output_dir}/adapter)")
    elif hasattr(model, "save_beside"):  # weights kept in a file of their own (a CRF tagger's transitions)
        weights = trainer.accelerator.get_state_dict(model)  # gathered under DeepSpeed or FSDP: every process
        if trainer.args.should_save:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            beside = model.save_beside(output_dir)  # the prefix of the weights it wrote
            _write_folder(trainer, model, {k: v for k, v in weights.items() if not k.startswith(beside)}, output_dir)
    else:
        trainer.save_model(output_dir)


def _write_folder(trainer, model, weights: dict | None, output_dir: str) -> None:
    """What Trainer's save writes (weights and config, tokenizer, training arguments), for a model it does not hold."""
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir, state_dict=weights)
    if trainer.processing_class is not None:
        trainer.processing_class.save_pretrained(output_dir)
    torch.save(trainer.args, os.path.join(output_dir, TRAINING_ARGS_NAME))
