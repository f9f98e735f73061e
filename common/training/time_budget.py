"""Training to a wall-clock budget (`--time_budget 30m`), as Cramming BERT trains: the learning rate follows the
share of the budget spent rather than the share of the steps taken, and training stops once the budget is spent,
with a checkpoint and the final save as at any other end. So a configuration ends in its time on a fast machine and
on a slow one, each having taken the steps it could (`--max_steps`, if set, still caps them).

The clock starts when the training loop does (after data and model are loaded) and counts evaluations inside the
loop. A budgeted run is not reproducible to the bit (its schedule depends on the machine's speed), and it is not
resumed: the clock would start again.
"""

import logging
import math
import time

from torch.optim.lr_scheduler import LambdaLR
from transformers import TrainerCallback

logger = logging.getLogger(__name__)


def budget_factor(spent: float, warmup: float, kind: str) -> float:
    """The learning-rate factor at `spent` (the share of the budget used, 0..1): a linear rise over the `warmup`
    share, then `kind` (linear to 0, cosine to 0, or constant) over the rest."""
    spent = min(max(spent, 0.0), 1.0)
    if spent < warmup:
        return spent / warmup
    rest = (spent - warmup) / (1 - warmup) if warmup < 1 else 1.0
    if kind == "linear":
        return 1 - rest
    if kind == "cosine":
        return 0.5 * (1 + math.cos(math.pi * rest))
    return 1.0


class TimeBudget(TrainerCallback):
    """The clock of one training run: it starts with the loop, gives the schedule the share spent, and stops the
    loop (saving a checkpoint) at the first step that ends past the budget."""

    def __init__(self, seconds: float, kind: str, warmup: float = 0.0):
        self.seconds, self.kind, self.warmup = seconds, kind, warmup  # warmup: a share, set with the schedule
        self.started = None
        self.spent_at_stop = None

    def spent(self) -> float:
        """The share of the budget used so far (0 before the loop starts)."""
        return 0.0 if self.started is None else (time.monotonic() - self.started) / self.seconds

    def scheduler(self, optimizer) -> LambdaLR:
        """A schedule over the budget's share spent (the step number is not used)."""
        return LambdaLR(optimizer, lambda step: budget_factor(self.spent(), self.warmup, self.kind))

    def on_train_begin(self, args, state, control, **kwargs):
        """The clock starts with the training loop."""
        self.started = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        """Past the budget: the loop stops here, saving a checkpoint if the run saves any."""
        if self.spent() >= 1 and self.spent_at_stop is None:
            self.spent_at_stop = self.spent()
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"
            logger.info(f"--time_budget: {self.seconds:,.0f} s spent after {state.global_step:,} steps; training stops")

    def report(self, steps: int) -> dict:
        """What the budget did, for all_results.json."""
        return {"seconds": self.seconds, "steps": steps, "stopped_by_budget": self.spent_at_stop is not None,
                "share_spent": round(self.spent_at_stop if self.spent_at_stop is not None else self.spent(), 4)}
