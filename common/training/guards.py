"""Training that has gone numerically wrong stops, instead of finishing with a model that learned nothing.

Stock Trainer keeps going when gradients turn NaN or infinite: the weights become NaN, the logged
loss hides it (`logging_nan_inf_filter` replaces such losses by the running mean, so it can read
0.0), and the run ends "successfully". The check runs before each optimizer step, so the weights
and every checkpoint saved so far are still good when the run stops.
"""

import torch
from transformers import TrainerCallback

from common.config.errors import OptionError
from common.training.checkpoints import complete_checkpoints


class NonFiniteTraining(OptionError):
    """Training stopped on NaN or infinite gradients (exit status 2, like a bad setting: usually the cause)."""


class StopOnNonFiniteGradients(TrainerCallback):
    """Raise `NonFiniteTraining` before an optimizer step whose gradients are not all finite.

    Under fp16 a GradScaler skips such steps on purpose (and lowers its scale), so there only the
    scaler's own handling applies.
    """

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        """Check every gradient before the optimizer applies it."""
        if args.fp16 or model is None:
            return
        gradients = [p.grad for p in model.parameters() if p.grad is not None]
        if not gradients:
            return
        norms = torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in gradients])
        if not bool(torch.isfinite(norms).all()):
            raise NonFiniteTraining(nonfinite_message(args, state, int((~torch.isfinite(norms)).sum()),
                                                      len(gradients)))


def nonfinite_message(args, state, bad: int, total: int) -> str:
    """What stopped, where, what is kept, and what to change."""
    checkpoints = complete_checkpoints(args.output_dir)
    kept = (f"the last good checkpoint is {checkpoints[-1]}" if checkpoints
            else "no checkpoint was saved before it")
    return (f"training stopped at step {state.global_step + 1}: the gradients of {bad} of {total} weight tensors are "
            f"NaN or infinite, so the model can no longer learn; {kept}, and the output folder's earlier model and "
            f"results are as they were. Lower --learning_rate (now {args.learning_rate:g}), keep --max_grad_norm above "
            f"0 (now {args.max_grad_norm:g}), or look for extreme values in the data")
