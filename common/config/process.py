"""Per-process set-up of a recipe run: logging, a warning about idle CPU cores, and the exit on bad input."""

import ctypes
import errno
import gc
import logging
import os
import signal
import sys

import datasets
import torch
import transformers

from common.config.errors import OptionError
from common.config.redaction import MaskCredentials, without_credentials
from common.data.errors import DataError

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when the thread that forked it ends
_forking = []  # the pid of the process about to fork, read by the child


def warn_if_accelerate_starved_threads() -> None:
    """`accelerate launch` without a GPU sets OMP_NUM_THREADS=1 unless told otherwise: say it costs cores."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cores = (os.cpu_count() or 1) // processes
    if "ACCELERATE_MIXED_PRECISION" in os.environ and not torch.cuda.is_available() and torch.get_num_threads() < cores:
        logger.warning(f"This process runs {torch.get_num_threads()} CPU thread(s) of the {cores} it could use "
                       f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, accelerate launch's default without a "
                       f"GPU): add --num_cpu_threads_per_process {cores} to accelerate launch, or use python/torchrun.")


def setup_logging(training_args) -> None:
    """Our messages at INFO on the main process (WARNING on the others); the libraries at --log_level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MaskCredentials())  # a storage URL's password never reaches the log
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        handlers=[handler], level=logging.INFO if training_args.should_log else logging.WARNING,
                        force=True)
    library_level = training_args.get_process_log_level()
    datasets.utils.logging.set_verbosity(library_level)
    transformers.utils.logging.set_verbosity(library_level)
    warn_if_accelerate_starved_threads()


def close_process_group() -> None:
    """End a torchrun/accelerate run's process group before Python exits.

    Left to the interpreter's shutdown, gloo's worker threads can be destroyed while still joinable, and a rank
    that finished early (every rank but the writer) then dies with "terminate called without an active exception"
    (SIGABRT) although its work was done. Each rank ends its own part; there is no barrier, so a rank never waits
    (and times out) while the main process writes the outputs, nor for ranks that stopped on an error.
    The trainer's DDP model still holds the group, in reference cycles that outlive main(): without collecting
    them first, destroy_process_group only unregisters the group and its threads live on into that shutdown.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gc.collect()
        torch.distributed.destroy_process_group()


def end_children_with_the_run() -> None:
    """Processes a run forks (the `datasets` workers that build a corpus and their manager, data-loader workers)
    end with it (Linux). Killed with kill -9, a run would otherwise leave them waiting forever, each on a pipe or
    socket its siblings hold open, holding their memory."""
    if not sys.platform.startswith("linux") or _forking:
        return
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    _forking.append(None)

    def in_child():
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != _forking[-1]:  # the parent ended before the signal was set
            os.kill(os.getpid(), signal.SIGKILL)

    os.register_at_fork(before=lambda: _forking.append(os.getpid()), after_in_parent=_forking.pop,
                        after_in_child=in_child)


def log_ours_at_info() -> None:
    """Our messages at INFO; the libraries' (onnxruntime's quantizer notes every tensor it skips) at WARNING."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.WARNING, force=True)
    for name in ("common", "__main__"):
        logging.getLogger(name).setLevel(logging.INFO)


def run_main(main) -> None:
    """Run a recipe's main(); bad data or settings end it with the message alone and exit status 2."""
    end_children_with_the_run()
    try:
        main()
    except Exception as e:
        mistake = user_mistake(e)
        if mistake is not None:
            close_progress_bars()
            print(f"error: {without_credentials(str(mistake))}", file=sys.stderr)
            sys.exit(2)
        if not disk_full(e):
            raise
        close_progress_bars()
        print(f"error: the disk is full ({getattr(e, 'filename', None) or e}): free some space and run again; the "
              "output folder keeps what it held before this run's final outputs were complete", file=sys.stderr)
        sys.exit(2)
    finally:
        close_process_group()


def close_progress_bars() -> None:
    """Close the progress bars a stopped run left open: closed at exit instead, they would print after the error
    line, which must be the last one."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", [])):
        bar.close()
    sys.stderr.flush()


def user_mistake(error: BaseException) -> Exception | None:
    """The DataError or OptionError behind an error, however a library wrapped it (`datasets` raises a
    DatasetGenerationError from the one its generator raised), or None. Only explicit causes count: a bug met
    while handling a mistake is a bug, and shows its traceback."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, (DataError, OptionError)):
            return error
        seen.add(id(error))
        error = error.__cause__
    return None


def disk_full(error: BaseException) -> bool:
    """Whether an error is a full disk (or quota), however a library wrapped it."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(text in str(error) for text in ("No space left on device", "Disk quota exceeded"))
