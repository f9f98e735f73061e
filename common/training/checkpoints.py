"""Checkpoints that are whole or not used: a completion record written last, checked by every reader.

Trainer writes a checkpoint's files one by one into `checkpoint-N`; a run killed part of the way
through leaves a folder that looks like the others. `mark_complete` writes `checkpoint_complete.json`
(every file with its size) once they are all on disk, and `checkpoint_problem` refuses a folder
without it, or with a file missing or of another size (a truncated `model.safetensors`).
"""

import json
import logging
import os
from pathlib import Path

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from common.config.errors import OptionError

logger = logging.getLogger(__name__)

COMPLETE_FILE = "checkpoint_complete.json"


def mark_complete(folder) -> None:
    """Record every file of the checkpoint with its size, after they are flushed to disk."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != COMPLETE_FILE:
            with open(path, "rb") as f:
                os.fsync(f.fileno())
            files[str(path.relative_to(folder))] = path.stat().st_size
    temporary = folder / (COMPLETE_FILE + ".tmp")
    with open(temporary, "w") as f:
        json.dump({"files": files}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, folder / COMPLETE_FILE)


def unmark(folder) -> None:
    """A checkpoint about to be (re)written is not complete until it is marked again."""
    (Path(folder) / COMPLETE_FILE).unlink(missing_ok=True)


def checkpoint_problem(folder) -> str | None:
    """Why `folder` is not a whole checkpoint, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return "not a folder"
    record = folder / COMPLETE_FILE
    if not record.is_file():  # a checkpoint from before the record, or from stock Trainer: its weights are read
        if not (folder / TRAINER_STATE_NAME).is_file():
            return f"no {TRAINER_STATE_NAME} (the run stopped while saving it)"
        return unreadable_weights(folder)
    try:
        files = json.loads(record.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return f"{COMPLETE_FILE} is damaged"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} is {path.stat().st_size:,} bytes, {size:,} when saved (truncated or changed)"
    return None


def unreadable_weights(folder: Path) -> str | None:
    """Why a safetensors file of `folder` cannot be read (a truncated file fails its header's length check), or None."""
    from safetensors import safe_open

    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as f:
                f.keys()
        except Exception as error:  # safetensors raises its own SafetensorError, or OSError
            return f"{path.name} cannot be read ({str(error).splitlines()[0][:120]})"
    return None


def checkpoint_folders(output_dir) -> list[Path]:
    """The checkpoint-N folders of `output_dir`, by step."""
    if not Path(output_dir).is_dir():
        return []
    return sorted((p for p in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*")
                   if p.is_dir() and p.name.split("-")[-1].isdigit()), key=lambda p: int(p.name.split("-")[-1]))


def complete_checkpoints(output_dir) -> list[Path]:
    """The whole checkpoints of `output_dir`, by step; each one skipped is named with the reason."""
    complete = []
    for folder in checkpoint_folders(output_dir):
        problem = checkpoint_problem(folder)
        if problem:
            logger.warning(f"{folder} is incomplete ({problem}): not resuming from it")
        else:
            complete.append(folder)
    return complete


def checkpoint_to_resume(args, places: list[Path] | None = None) -> str | None:
    """--resume_from_checkpoint: a checkpoint folder, or True for the newest whole one in the first of `places`
    that holds one (default: --output_dir), or auto for the same when there is one and a fresh start when there
    is none (a command that a launcher restarts, as torchrun --max_restarts does, continues where it stopped)."""
    if args.resume_from_checkpoint is None:
        return None
    if str(args.resume_from_checkpoint).lower() not in ("true", "auto"):
        problem = checkpoint_problem(args.resume_from_checkpoint)
        if problem:
            raise OptionError(f"--resume_from_checkpoint {args.resume_from_checkpoint}: not a complete checkpoint "
                              f"({problem})")
        return args.resume_from_checkpoint
    places = places or [Path(args.output_dir)]
    for folder in places:
        checkpoints = complete_checkpoints(folder)
        if checkpoints:
            logger.info(f"Resuming from {checkpoints[-1]}, the last complete checkpoint in {places[-1]}")
            return str(checkpoints[-1])
    if str(args.resume_from_checkpoint).lower() == "auto":
        logger.info(f"--resume_from_checkpoint auto: no complete checkpoint in {places[-1]} yet; training starts afresh")
        return None
    raise OptionError(f"--resume_from_checkpoint True: no complete checkpoint-* folder in {places[-1]} to resume from")
