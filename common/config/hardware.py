"""What the hardware runs well, and the precision Trainer really uses."""

import ctypes
import sys

import torch


def bf16_supported() -> bool:
    """bf16 pays off on GPUs that have it and on CPUs with AVX-512 BF16 or AMX; elsewhere it is emulated and slow."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def precision_name(training_args) -> str:
    """The precision Trainer really trains in: its --bf16/--fp16 flags, else `accelerate launch`'s mixed_precision."""
    return "fp32" if training_args.mixed_precision == "no" else training_args.mixed_precision


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for the next step instead of giving it back to the OS (Linux; a no-op elsewhere).

    glibc serves large blocks (always those above 32 MB) from fresh mmap pages and unmaps them on free, so every
    training step pays page faults to get them back (zeroing the word-embedding gradient is such a block). With
    mmap off and the heap trimmed only above 1 GiB, freed blocks are reused. It changes no result. The cost is
    resident memory: the heap keeps what it has held, and its holes need not fit the next block, though peak
    memory of training stays the same. CUDA memory has its own allocator. The figures, speed and memory, are
    in docs/benchmarks.md (bench/candidates.py).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl or another C library: nothing to tune
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's <malloc.h>
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 1 << 30))
