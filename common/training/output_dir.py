"""The output folder belongs to one run at a time, and no run loses an earlier one's work before it has its own.

    with RunFolder.of(training_args) as run:     # locked, checked; nothing removed yet
        ...load data and model, train (run.args.output_dir is the staging folder), write outputs...
    # leaving the block moves this run's outputs in, replacing the earlier run's

The folder's top level holds one complete run at any moment: the earlier one, until this run's
outputs, checkpoints included, are all written; then this one. A run's life in its `--output_dir`:

1. Entering the block: a lock file held for the whole run (`fcntl.flock`, released by the system even
   after `kill -9`) stops a second run into a busy folder. Training into a folder holding an earlier
   run's files stops, as in the reference scripts, unless told to replace them
   (`--overwrite_output_dir True`) or to continue its training (`--resume_from_checkpoint`). Nothing is
   removed yet. A training run writes into `.incoming/` from here on: its checkpoints, TensorBoard logs
   and search results while it trains, then its final outputs. Evaluation or prediction alone into a
   trained model's folder writes into `predict/` (or `eval/`) inside it, so the training run's files stay.
2. `run.make_room()`, once data and model are loaded (the training stages call it): what an unfinished
   earlier run left in `.incoming/` goes, except the checkpoints this run resumes from
   (`--resume_from_checkpoint True` takes the newest complete one there first, then the folder's own).
3. `run.stage()`, after training: the final model, results, card and predictions go to `.incoming/` too
   (a run that does not train gets an empty one here).
4. Leaving the block normally (also by `return` or `sys.exit(0)`): a journal names what to move in and
   what of the earlier run to remove (its checkpoints included), then the moves and removals run.
   Leaving it by an exception moves nothing: a mistake in the data or settings also removes the folders
   the run created and wrote nothing into; any other error leaves `.incoming/` to be resumed from or
   discarded by the next run. A run killed during the moves is completed from the journal by the next
   run into the folder.

Folders that no recipe wrote are never emptied.
"""

import fcntl
import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from common.config.errors import OptionError
from common.config.process import user_mistake
from common.training.checkpoints import checkpoint_problem, complete_checkpoints, mark_complete

logger = logging.getLogger(__name__)

LOCK_FILE = ".recipe-run.lock"  # also marks the folder as one a recipe wrote
STAGING = ".incoming"  # this run's final outputs, until they are complete
JOURNAL = "commit.json"  # in STAGING, written once they are: what to move into the folder and what to remove
TRAINING_ENTRIES = ("runs", "hp_search")  # written at the top of the folder while training (TensorBoard, a search)
PREDICT_FOLDERS = {True: "predict", False: "eval"}  # evaluation/prediction alone beside a trained model


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


class RunFolder:
    """The output folder of one run, for the run's life: a context manager (see the module's docstring).

    `RunFolder.of(training_args)` for a recipe run; `args.output_dir` then follows the run (the staging
    folder while it trains, the output folder once its outputs are in). Built from plain values for a
    command that is not a Trainer run (the export): `run.path` is where it writes.
    """

    def __init__(self, output_dir, trains: bool, overwrite: bool = False, resume=None, predicts: bool = False,
                 main_process: bool = True, args=None, resumable: bool = False):
        self.folder = Path(output_dir)
        self.trains, self.overwrite, self.resume, self.predicts = trains, overwrite, resume, predicts
        self.main_process, self.args, self.resumable = main_process, args, resumable
        self.path = self.folder  # where this run writes now
        self.earlier: list[str] = []  # the earlier run's entries
        self.staging_ready = False  # what an unfinished run left in .incoming/ is gone (or resumed from)
        self._locks = {}  # folder -> its open lock file, held until the run ends
        self._created: list[Path] = []  # folders this run created: removed again if it stops on a mistake

    @classmethod
    def of(cls, args) -> "RunFolder":
        """The run folder of a recipe run's TrainingArguments (its output_dir is kept pointing where the run writes)."""
        return cls(args.output_dir, trains=bool(args.do_train), overwrite=bool(args.overwrite_output_dir),
                   resume=getattr(args, "resume_from_checkpoint", None), predicts=bool(args.do_predict),
                   main_process=bool(args.should_save), args=args, resumable=hasattr(args, "resume_from_checkpoint"))

    @property
    def staging(self) -> Path:
        """The folder this run's outputs are written to before they are moved in."""
        return self.folder / STAGING

    def _point_at(self, path: Path) -> None:
        self.path = path
        if self.args is not None:
            self.args.output_dir = str(path)

    def __enter__(self) -> "RunFolder":
        """Lock the folder and check what an earlier run left there (see `_claim`); a refusal releases it again."""
        try:
            self._claim()
        except BaseException as error:
            self.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def _claim(self) -> None:
        """Lock the folder and check what an earlier run left there; nothing is removed yet.

        Without training, a folder holding a trained model gets this run's files in a subfolder (the same
        decision on every process: nothing is written before it). A training run writes to the staging folder.
        """
        folder = self.folder
        if self.main_process and not self.trains and (folder / STAGING / JOURNAL).is_file():
            self._lock(folder)  # the model this run may read is only whole once the interrupted move is done
            finish_interrupted_commit(folder)
        if not self.trains and folder.is_dir() and holds_trained_model(folder):
            self.folder = folder / PREDICT_FOLDERS[self.predicts]
            logger.info(f"{folder} holds a trained model: this run's results go to {self.folder}, beside it")
        self._point_at(self.staging if self.trains else self.folder)
        if not self.main_process:
            return  # the main process claims the folder for all
        ours = (self.folder / LOCK_FILE).exists()
        self._lock(self.folder)
        finish_interrupted_commit(self.folder)
        self.earlier = _entries(self.folder)
        if not self.earlier or not self.trains:
            return  # evaluation and prediction alone replace only the files they write, once written
        if not (self.resumes() or self.overwrite):
            resume = ", --resume_from_checkpoint True to continue the training saved there" if self.resumable else ""
            raise OptionError(f"--output_dir {self.folder} already holds files ({_listed(self.earlier)}): give "
                              f"--overwrite_output_dir True to replace them{resume}, or another --output_dir")
        if not ours:
            raise OptionError(f"--output_dir {self.folder} holds files that no recipe run wrote "
                              f"({_listed(self.earlier)}): they are not removed; choose another --output_dir")

    def __exit__(self, kind, error, traceback) -> bool:
        """A run that ended normally (a return, `sys.exit(0)`) moves its outputs in; one stopped by a mistake in its
        data or settings removes the folders it created; any other error leaves everything for a resume."""
        try:
            if error is None or (isinstance(error, SystemExit) and error.code in (0, None)):
                self.commit()
            elif isinstance(error, Exception) and user_mistake(error) is not None:
                self._remove_unused_folders()
        finally:
            for lock in self._locks.values():
                lock.close()
            self._locks.clear()
        return False

    def resumes(self) -> bool:
        """Whether this run continues a training: --resume_from_checkpoint, but `auto` only once a complete checkpoint
        is there (without one it is a fresh start, refused into a folder that holds an earlier run's files)."""
        if str(self.resume).lower() == "auto":
            return any(complete_checkpoints(place) for place in self.resume_places() if place.is_dir())
        return self.resume is not None

    def resume_places(self) -> list[Path]:
        """Where --resume_from_checkpoint True looks, in this order: the staging folder (a training run that did not
        finish), then the output folder's own checkpoints (a finished run, continued)."""
        return [self.staging, self.folder] if self.trains else [self.folder]

    def make_room(self) -> None:
        """Data and model are loaded: the staging folder is emptied of what an unfinished earlier run left there, but
        the checkpoints this run resumes from. The earlier complete run's files, checkpoints included, stay until
        this run's are complete. Safe to call again (a search calls it before its trials)."""
        if not self.main_process or self.staging_ready:
            return
        staging = self.staging
        resumed = _resumed_in(staging, self.resume)
        left = sorted(staging.iterdir()) if staging.is_dir() else []
        keep = [p for p in left if resumed and _written_while_training(p.name)
                and not (p.name.startswith(PREFIX_CHECKPOINT_DIR) and checkpoint_problem(p))]
        discarded = [p for p in left if p not in keep]
        for path in discarded:
            _remove(path)
        if discarded:
            logger.warning(f"{self.folder}: removing {STAGING}/, the outputs of an earlier run that stopped before it "
                           f"finished ({_listed([p.name for p in discarded])}); the folder's own files are as they were")
        staging.mkdir(exist_ok=True)
        self.staging_ready = True

    def stage(self) -> None:
        """This run's final outputs go to the staging folder from here on (every process)."""
        self.make_room()
        self._point_at(self.staging)

    def commit(self) -> None:
        """Move this run's staged outputs into the output folder, replacing the earlier run's (main process only)."""
        staging, was_staged = self.staging, self.path == self.staging
        self._point_at(self.folder)
        if not (self.main_process and was_staged and staging.is_dir()):
            return
        point_states_at_final_folder(staging)
        moved = sorted(p.name for p in staging.iterdir())
        removed = [n for n in self.earlier if n not in moved] if self.trains else []
        _write_atomically(staging / JOURNAL, json.dumps({"move": moved, "remove": removed}))
        _apply_journal(self.folder)
        self.earlier, self.staging_ready = [], False
        logger.info(f"This run's {len(moved)} output file(s) and folder(s) are in {self.folder}"
                    + (f"; the earlier run's {_listed(removed)} removed" if removed else ""))

    def _lock(self, folder: Path) -> None:
        """Hold the folder's lock file until the run ends, or stop if another process holds it."""
        try:
            created = [p for p in [folder, *folder.parents] if not p.exists()]
            folder.mkdir(parents=True, exist_ok=True)
            if folder.resolve() in self._locks:
                return
            lock = open(folder / LOCK_FILE, "a+")
        except OSError as error:
            raise OptionError(f"--output_dir {folder}: cannot write there ({error.strerror}); choose another "
                              "--output_dir") from None
        self._created = created
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
        self._locks[folder.resolve()] = lock

    def _remove_unused_folders(self) -> None:
        """A run stopped on its data or settings: the folders it created and wrote nothing into go again."""
        for folder in self._created:  # the output folder first, then the parents created with it
            try:
                if (folder / STAGING).is_dir() and not any((folder / STAGING).iterdir()):
                    (folder / STAGING).rmdir()
                if not folder.is_dir() or {p.name for p in folder.iterdir()} - {LOCK_FILE}:
                    break
                held = self._locks.pop(folder.resolve(), None)
                if held is not None:
                    held.close()
                (folder / LOCK_FILE).unlink(missing_ok=True)
                folder.rmdir()
            except OSError:
                break
        self._created = []


def _resumed_in(staging: Path, resume) -> bool:
    """Whether --resume_from_checkpoint takes a checkpoint inside the staging folder."""
    if resume is None or not staging.is_dir():
        return False
    if str(resume).lower() in ("true", "auto"):
        return bool(complete_checkpoints(staging))
    return Path(resume).resolve().parent == staging.resolve()


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
    without a journal: it stays until the next training run resumes from it or discards it (RunFolder.make_room),
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


def final_path(path) -> Path:
    """Where a file written to the staging folder will be once the run's outputs are moved in (for messages)."""
    path = Path(path)
    return Path(*[part for part in path.parts if part != STAGING])
