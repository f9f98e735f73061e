"""The output folder belongs to one run at a time, and no run loses an earlier one's work before it has its own.

The folder's top level holds one complete run at any moment: the earlier one, until this run's
outputs, checkpoints included, are all written; then this one. A run's life in its `--output_dir`:

1. `claim_output_dir`, first thing: a lock file held for the whole run (`fcntl.flock`, released by the
   system even after `kill -9`) stops a second run into a busy folder. Training into a folder holding
   an earlier run's files stops, as in the reference scripts, unless told to replace them
   (`--overwrite_output_dir True`) or to continue its training (`--resume_from_checkpoint`). Nothing is
   removed yet: a run that stops on its data or model leaves the folder exactly as it was (a folder
   this run created is removed again). A training run writes into `.incoming/` from here on: its
   checkpoints, TensorBoard logs and search results while it trains, then its final outputs.
   Evaluation or prediction alone into a trained model's folder writes into `predict/` (or `eval/`)
   inside it, so the training run's files stay.
2. `make_room_for_training`, once data and model are loaded: what an unfinished earlier run left in
   `.incoming/` goes, except the checkpoints this run resumes from (`--resume_from_checkpoint True`
   takes the newest complete one there first, then the newest of the folder's own).
3. `stage_outputs`, after training: the final model, results, card and predictions go to `.incoming/`
   too (a run that does not train gets an empty one here).
4. `commit_outputs`, when all is written: a journal names what to move in and what of the earlier run
   to remove (its checkpoints included), then the moves and removals run. Until then the earlier run's
   files are untouched; a run killed before the journal leaves `.incoming/` to be resumed from or
   discarded by the next run, and one killed during the moves is completed from the journal by the
   next run into the folder.

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
from common.config.process import on_user_mistake
from common.training.checkpoints import checkpoint_problem, complete_checkpoints, mark_complete

logger = logging.getLogger(__name__)

LOCK_FILE = ".recipe-run.lock"  # also marks the folder as one a recipe wrote
STAGING = ".incoming"  # this run's final outputs, until they are complete
JOURNAL = "commit.json"  # in STAGING, written once they are: what to move into the folder and what to remove
TRAINING_ENTRIES = ("runs", "hp_search")  # written at the top of the folder while training (TensorBoard, a search)
PREDICT_FOLDERS = {True: "predict", False: "eval"}  # evaluation/prediction alone beside a trained model
_held_locks = {}  # folder -> its open lock file, kept for the life of the process (a second run in it may reuse it)
_created = []  # the folders the last claim created: removed if the run stops on a mistake before writing into them


@dataclass
class Claim:
    """What a run found in its output folder when it started."""

    folder: Path
    earlier: list[str] = field(default_factory=list)  # the earlier run's entries
    replaces_earlier: bool = False  # training: the earlier run's entries go once this run's are in
    staging_ready: bool = False  # what an unfinished run left in .incoming/ is gone (or resumed from)


_claims: dict[Path, Claim] = {}


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in (LOCK_FILE, STAGING))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _written_while_training(name: str) -> bool:
    """Checkpoints, TensorBoard logs and search results: a run writes them while it trains."""
    return name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") or name in TRAINING_ENTRIES


def _listed(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def holds_trained_model(folder: Path) -> bool:
    """Whether `folder` holds a saved model (its config and safetensors weights)."""
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def claim_output_dir(args) -> None:
    """Lock `args.output_dir` for this run and check what an earlier run left there; nothing is removed yet.

    Without training, a folder holding a trained model gets this run's files in a subfolder (the
    same decision on every process: nothing is written before it). A training run's `args.output_dir`
    becomes the staging folder, on every process.
    """
    folder = Path(args.output_dir)
    if args.should_save and not args.do_train and (folder / STAGING / JOURNAL).is_file():
        _lock(folder)  # the model this run may read is only whole once the interrupted move is done
        finish_interrupted_commit(folder)
    if not args.do_train and folder.is_dir() and holds_trained_model(folder):
        args.output_dir = str(folder / PREDICT_FOLDERS[bool(args.do_predict)])
        logger.info(f"{folder} holds a trained model: this run's results go to {args.output_dir}, beside it")
        folder = Path(args.output_dir)
    if args.do_train:
        args.output_dir = str(folder / STAGING)  # checkpoints too: the folder's top level keeps the earlier run
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
        created = [p for p in [folder, *folder.parents] if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        lock_on(folder)
    except OSError as error:
        raise OptionError(f"--output_dir {folder}: cannot write there ({error.strerror}); choose another "
                          "--output_dir") from None
    if created and _remove_unused_folders not in on_user_mistake:
        on_user_mistake.append(_remove_unused_folders)
    _created[:] = created


def _remove_unused_folders() -> None:
    """A run stopped on its data or settings: the folders it created and wrote nothing into go again."""
    for folder in _created:  # the output folder first, then the parents created with it
        try:
            if (folder / STAGING).is_dir() and not any((folder / STAGING).iterdir()):
                (folder / STAGING).rmdir()
            if not folder.is_dir() or {p.name for p in folder.iterdir()} - {LOCK_FILE}:
                break
            held = _held_locks.pop(folder.resolve(), None)
            if held is not None:
                held.close()
            (folder / LOCK_FILE).unlink(missing_ok=True)
            folder.rmdir()
        except OSError:
            break
    _created.clear()


def _claim(args) -> Claim | None:
    folder = Path(args.output_dir)
    return _claims.get((folder.parent if folder.name == STAGING else folder).resolve())


def resume_places(args) -> list[Path]:
    """Where --resume_from_checkpoint True looks, in this order: the staging folder (a training run that did not
    finish), then the output folder's own checkpoints (a finished run, continued)."""
    folder = Path(args.output_dir)
    return [folder, folder.parent] if folder.name == STAGING else [folder]


def make_room_for_training(args) -> None:
    """Data and model are loaded: the staging folder is emptied of what an unfinished earlier run left there, but
    the checkpoints this run resumes from. The earlier complete run's files, checkpoints included, stay until this
    run's are complete. Safe to call again (a search calls it before its trials)."""
    claim = _claim(args)
    if claim is None or claim.staging_ready:
        return
    staging = claim.folder / STAGING
    resumed = _resumed_in(staging, getattr(args, "resume_from_checkpoint", None))
    left = sorted(staging.iterdir()) if staging.is_dir() else []
    keep = [p for p in left if resumed and _written_while_training(p.name)
            and not (p.name.startswith(PREFIX_CHECKPOINT_DIR) and checkpoint_problem(p))]
    discarded = [p for p in left if p not in keep]
    for path in discarded:
        _remove(path)
    if discarded:
        logger.warning(f"{claim.folder}: removing {STAGING}/, the outputs of an earlier run that stopped before it "
                       f"finished ({_listed([p.name for p in discarded])}); the folder's own files are as they were")
    staging.mkdir(exist_ok=True)
    claim.staging_ready = True


def _resumed_in(staging: Path, resume) -> bool:
    """Whether --resume_from_checkpoint takes a checkpoint inside the staging folder."""
    if resume is None or not staging.is_dir():
        return False
    if str(resume).lower() == "true":
        return bool(complete_checkpoints(staging))
    return Path(resume).resolve().parent == staging.resolve()


def stage_outputs(args) -> None:
    """Point `args.output_dir` at the staging folder, where this run writes its final outputs (every process)."""
    claim = _claim(args)
    if claim is None:
        if not args.should_save and Path(args.output_dir).name != STAGING:
            args.output_dir = str(Path(args.output_dir) / STAGING)  # the main process owns the claim
        return
    make_room_for_training(args)
    args.output_dir = str(claim.folder / STAGING)


def commit_outputs(args) -> None:
    """Move this run's staged outputs into the output folder, replacing the earlier run's (main process only)."""
    staging = Path(args.output_dir)
    if staging.name != STAGING:
        return
    claim = _claim(args)
    args.output_dir = str(staging.parent)
    if not args.should_save or claim is None:
        return
    point_states_at_final_folder(staging)
    moved = sorted(p.name for p in staging.iterdir())
    removed = [n for n in claim.earlier if n not in moved] if claim.replaces_earlier else []
    _write_atomically(staging / JOURNAL, json.dumps({"move": moved, "remove": removed}))
    _apply_journal(claim.folder)
    claim.earlier, claim.staging_ready = [], False
    logger.info(f"This run's {len(moved)} output file(s) and folder(s) are in {claim.folder}"
                + (f"; the earlier run's {_listed(removed)} removed" if removed else ""))


def point_states_at_final_folder(staging: Path) -> None:
    """Trainer records the best checkpoint by its path, inside the staging folder while training: the saved states
    name it where it will be (a checkpoint so changed is marked complete again)."""
    prefix, final = str(staging) + os.sep, str(staging.parent) + os.sep
    for state_file in [staging / "trainer_state.json", *staging.glob(f"{PREFIX_CHECKPOINT_DIR}-*/trainer_state.json")]:
        if not state_file.is_file():
            continue
        state = json.loads(state_file.read_text())
        best = state.get("best_model_checkpoint")
        if not (isinstance(best, str) and best.startswith(prefix)):
            continue
        complete = checkpoint_problem(state_file.parent) is None
        state["best_model_checkpoint"] = final + best[len(prefix):]
        _write_atomically(state_file, json.dumps(state, indent=2, sort_keys=True) + "\n")
        if complete and state_file.parent != staging:
            mark_complete(state_file.parent)


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
    """A run killed while moving its outputs in is completed. One killed before it had them all left `.incoming/`
    without a journal: it stays until the next training run resumes from it or discards it (make_room_for_training),
    or until a run that does not train stages its own outputs."""
    staging = folder / STAGING
    if (staging / JOURNAL).is_file():
        logger.warning(f"{folder}: an earlier run stopped while moving its complete outputs in; completing that")
        _apply_journal(folder)


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
