"""The output folder belongs to one run at a time, and no run loses an earlier one's work before it has its own.

A run's life in its `--output_dir`:

1. `claim_output_dir`, first thing: a lock file held for the whole run (`fcntl.flock`, released by the
   system even after `kill -9`) stops a second run into a busy folder. Training into a folder holding
   an earlier run's files stops, as in the reference scripts, unless told to replace them
   (`--overwrite_output_dir True`) or to continue its training (`--resume_from_checkpoint`). Nothing is
   removed yet: a run that stops on its data or model leaves the folder exactly as it was. Evaluation
   or prediction alone into a trained model's folder writes into `predict/` (or `eval/`) inside it, so
   the training run's files stay.
2. `make_room_for_training`, once data and model are loaded: with `--overwrite_output_dir` the earlier
   run's checkpoints go (this run's would take their names); its model and results stay.
3. `stage_outputs`, after training: `args.output_dir` points at `.incoming/`, where the final model,
   results, card and predictions are written.
4. `commit_outputs`, when all is written: a journal names what to move in and what of the earlier run
   to remove, then the moves and removals run. Until then the earlier run's model and results are
   untouched; a run killed while writing leaves `.incoming/` without a journal (discarded by the next
   run), and one killed during the moves is completed from the journal by the next run into the folder.

Folders that no recipe wrote are never emptied.
"""

import fcntl
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from common.config.errors import OptionError

logger = logging.getLogger(__name__)

LOCK_FILE = ".recipe-run.lock"  # also marks the folder as one a recipe wrote
STAGING = ".incoming"  # this run's final outputs, until they are complete
JOURNAL = "commit.json"  # in STAGING, written once they are: what to move into the folder and what to remove
TRAINING_ENTRIES = ("runs", "hp_search")  # written at the top of the folder while training (TensorBoard, a search)
PREDICT_FOLDERS = {True: "predict", False: "eval"}  # evaluation/prediction alone beside a trained model
_held_locks = {}  # folder -> its open lock file, kept for the life of the process (a second run in it may reuse it)


@dataclass
class Claim:
    """What a run found in its output folder when it started."""

    folder: Path
    earlier: list[str] = field(default_factory=list)  # the earlier run's entries
    replaces_earlier: bool = False  # training: the earlier run's entries go once this run's are in
    staged: bool = False


_claims: dict[Path, Claim] = {}


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in (LOCK_FILE, STAGING))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _written_while_training(name: str) -> bool:
    return name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") or name in TRAINING_ENTRIES


def _listed(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def holds_trained_model(folder: Path) -> bool:
    """Whether `folder` holds a saved model (its config and safetensors weights)."""
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def claim_output_dir(args) -> None:
    """Lock `args.output_dir` for this run and check what an earlier run left there; nothing is removed yet.

    Without training, a folder holding a trained model gets this run's files in a subfolder (the
    same decision on every process: nothing is written before it).
    """
    folder = Path(args.output_dir)
    if args.should_save and not args.do_train and (folder / STAGING / JOURNAL).is_file():
        _lock(folder)  # the model this run may read is only whole once the interrupted move is done
        finish_interrupted_commit(folder)
    if not args.do_train and folder.is_dir() and holds_trained_model(folder):
        args.output_dir = str(folder / PREDICT_FOLDERS[bool(args.do_predict)])
        logger.info(f"{folder} holds a trained model: this run's results go to {args.output_dir}, beside it")
        folder = Path(args.output_dir)
    if not args.should_save:
        return  # the main process claims the folder for all
    ours = (folder / LOCK_FILE).exists()
    _lock(folder)
    finish_interrupted_commit(folder)
    earlier = _entries(folder)
    _claims[folder.resolve()] = Claim(folder, earlier, replaces_earlier=bool(args.do_train))
    if not earlier or not args.do_train:
        return  # evaluation and prediction alone replace only the files they write, once written
    resuming = getattr(args, "resume_from_checkpoint", None) is not None
    if not (resuming or args.overwrite_output_dir):
        resume = (", --resume_from_checkpoint True to continue the training saved there"
                  if hasattr(args, "resume_from_checkpoint") else "")  # a command that trains
        raise OptionError(f"--output_dir {folder} already holds files ({_listed(earlier)}): give "
                          f"--overwrite_output_dir True to replace them{resume}, or another --output_dir")
    if not ours:
        raise OptionError(f"--output_dir {folder} holds files that no recipe run wrote ({_listed(earlier)}): "
                          "they are not removed; choose another --output_dir")


def _lock(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock_on(folder)
    except OSError as error:
        raise OptionError(f"--output_dir {folder}: cannot write there ({error.strerror}); choose another "
                          "--output_dir") from None


def _claim(args) -> Claim | None:
    return _claims.get(Path(args.output_dir).resolve())


def make_room_for_training(args) -> None:
    """Data and model are loaded and training starts: with --overwrite_output_dir, the earlier run's checkpoints
    go (this run's take their names; a resume would otherwise pick them). Its model and results stay until this
    run's are complete."""
    claim = _claim(args)
    if claim is None or args.resume_from_checkpoint is not None or not args.overwrite_output_dir:
        return
    training = [n for n in claim.earlier if _written_while_training(n)]
    for name in training:
        _remove(claim.folder / name)
    claim.earlier = [n for n in claim.earlier if n not in training]
    if training:
        logger.info(f"Removed the earlier run's {len(training)} checkpoint folder(s) from {claim.folder} "
                    f"({_listed(training)}); its model and results stay until this run's are complete")


def stage_outputs(args) -> None:
    """Point `args.output_dir` at the staging folder, where this run writes its final outputs (every process)."""
    claim = _claim(args)
    if claim is None and not args.should_save:
        args.output_dir = str(Path(args.output_dir) / STAGING)  # the main process owns the claim
        return
    if claim is None or claim.staged:
        return
    staging = claim.folder / STAGING
    if args.should_save:
        _remove(staging)
        staging.mkdir()
    claim.staged = True
    args.output_dir = str(staging)


def commit_outputs(args) -> None:
    """Move this run's staged outputs into the output folder, replacing the earlier run's (main process only)."""
    staging = Path(args.output_dir)
    if staging.name != STAGING:
        return
    args.output_dir = str(staging.parent)
    claim = _claims.get(staging.parent.resolve())
    if not args.should_save or claim is None:
        return
    moved = sorted(p.name for p in staging.iterdir())
    removed = [n for n in claim.earlier if n not in moved and not _written_while_training(n)] \
        if claim.replaces_earlier else []
    _write_atomically(staging / JOURNAL, json.dumps({"move": moved, "remove": removed}))
    _apply_journal(claim.folder)
    claim.earlier, claim.staged = [], False
    logger.info(f"This run's {len(moved)} output file(s) and folder(s) are in {claim.folder}"
                + (f"; the earlier run's {_listed(removed)} removed" if removed else ""))


def _apply_journal(folder: Path) -> None:
    """Carry out a written journal; safe to repeat after a kill part of the way through."""
    staging = folder / STAGING
    journal = json.loads((staging / JOURNAL).read_text())
    for name in journal["move"]:
        source = staging / name
        if source.exists() or source.is_symlink():
            target = folder / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)  # os.replace moves a folder only onto an empty one
            os.replace(source, target)
    for name in journal["remove"]:
        _remove(folder / name)
    shutil.rmtree(staging)


def finish_interrupted_commit(folder: Path) -> None:
    """A run killed while moving its outputs in is completed; one killed before it had them all is discarded."""
    staging = folder / STAGING
    if not staging.is_dir():
        return
    if (staging / JOURNAL).is_file():
        logger.warning(f"{folder}: an earlier run stopped while moving its complete outputs in; completing that")
        _apply_journal(folder)
    else:
        logger.warning(f"{folder}: removing {STAGING}/, the outputs of an earlier run that stopped before it "
                       "finished writing them (the folder's own files are as they were)")
        shutil.rmtree(staging)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def lock_on(folder: Path) -> None:
    """Hold the folder's lock file for the rest of this process, or stop if another process holds it."""
    key = folder.resolve()
    if key in _held_locks:
        return
    lock = open(folder / LOCK_FILE, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise OptionError(f"--output_dir {folder} is in use by another run ({holder}): wait for it to finish, "
                          "or choose another --output_dir") from None
    lock.seek(0), lock.truncate()
    lock.write(f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    lock.flush()
    _held_locks[key] = lock


def final_path(path) -> Path:
    """Where a file written to the staging folder will be once the run's outputs are moved in (for messages)."""
    path = Path(path)
    return Path(*[part for part in path.parts if part != STAGING])
