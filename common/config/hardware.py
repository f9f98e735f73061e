"""What the hardware runs well, and the precision Trainer really uses."""

import torch


def bf16_supported() -> bool:
    """bf16 pays off on GPUs that have it and on CPUs with AVX-512 BF16 or AMX; elsewhere it is emulated and slow."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def precision_name(training_args) -> str:
    """The precision Trainer really trains in: its --bf16/--fp16 flags, else `accelerate launch`'s mixed_precision."""
    return "fp32" if training_args.mixed_precision == "no" else training_args.mixed_precision
