"""The output folder belongs to one run at a time, and holds nothing of an earlier run that could pass for this one's.

As the reference scripts do, training into a folder that already holds files stops, unless told to
overwrite (`--overwrite_output_dir True`: the earlier run's files are removed first) or to continue
its training (`--resume_from_checkpoint`: its checkpoints are kept, its other outputs removed). A
lock file held for the whole run (`fcntl.flock`, released by the system even after `kill -9`) stops a
second run into a busy folder. Folders that a recipe did not write are never emptied.
"""

import fcntl
import logging
import os
import shutil
import socket
import time
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from common.config.errors import OptionError

logger = logging.getLogger(__name__)

LOCK_FILE = ".recipe-run.lock"  # also marks the folder as one a recipe wrote
_held_locks = {}  # folder -> its open lock file, kept for the life of the process (a second run in it may reuse it)


def claim_output_dir(args) -> None:
    """Lock `args.output_dir` for this run and clear what an earlier run left there (main process only)."""
    if not args.should_save:
        return  # the main process claims the folder for all
    folder = Path(args.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    earlier = sorted(p.name for p in folder.iterdir() if p.name != LOCK_FILE)
    ours = (folder / LOCK_FILE).exists()
    lock_on(folder)
    if not earlier or not args.do_train:
        return  # evaluation and prediction alone may write beside a trained model (the files they write are replaced)

    resuming = args.resume_from_checkpoint is not None
    if not (resuming or args.overwrite_output_dir):
        raise OptionError(f"--output_dir {folder} already holds files ({', '.join(earlier[:5])}"
                          f"{', ...' if len(earlier) > 5 else ''}): give --overwrite_output_dir True to replace them, "
                          "--resume_from_checkpoint True to continue the training saved there, or another --output_dir")
    if not ours:
        raise OptionError(f"--output_dir {folder} holds files that no recipe run wrote ({', '.join(earlier[:5])}): "
                          "they are not removed; choose another --output_dir")
    keep = {p for p in earlier if resuming and p.startswith(f"{PREFIX_CHECKPOINT_DIR}-")}
    removed = [name for name in earlier if name not in keep]
    for name in removed:
        path = folder / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    logger.info(f"Removed the earlier run's {len(removed)} file(s) and folder(s) from {folder} "
                f"({', '.join(removed[:5])}{', ...' if len(removed) > 5 else ''})"
                + ("; kept its checkpoints to resume from" if keep else ""))


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
