"""Training losses beyond a model's own: class weights, an L1 penalty, and distillation from a teacher's logits.

Class weights (`--class_weights balanced`, `w1,w2,...` in label order, or `name=w,...`) are computed
once from the whole training split, so every process uses the same ones. The weighted loss is a sum
over rows (or labelled tokens) divided by their count, never by the batch's own sum of weights: that
sum differs from batch to batch, and so between 1 and N processes or accumulation steps.
Multi-label tasks weigh each label's positive rows (`pos_weight` of binary cross-entropy).

The L1 penalty, lambda x sum|w| over the parameters weight decay covers (not biases or norm weights),
is computed in float32 and added to every micro-batch's loss, so that after Trainer's division by
the accumulation steps, and DDP's mean over processes, each optimizer step adds lambda x sign(w) once.
"""

import numpy as np
import torch
import torch.nn.functional as F

from common.config.errors import OptionError


def parse_class_weights(spec: str, label_list: list[str]) -> dict[str, float] | None:
    """Explicit weights from `w1,w2,...` (label order) or `name=w,...` (others 1.0); None for 'balanced'."""
    if spec == "balanced":
        return None
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    named = all("=" in p for p in parts)
    if not named and any("=" in p for p in parts):
        raise OptionError(f"--class_weights {spec}: give every weight as name=value, or none of them")
    try:
        if named:
            pairs = {name.strip(): float(value) for name, value in (p.split("=", 1) for p in parts)}
        else:
            values = [float(p) for p in parts]
    except ValueError:
        raise OptionError(f"--class_weights {spec}: weights must be numbers (or the word balanced)") from None
    if named:
        unknown = sorted(set(pairs) - set(label_list))
        if unknown:
            raise OptionError(f"--class_weights: {', '.join(unknown)} is not a label (labels: {', '.join(label_list)})")
        weights = {label: pairs.get(label, 1.0) for label in label_list}
    else:
        if len(values) != len(label_list):
            raise OptionError(f"--class_weights {spec}: {len(values)} weights for {len(label_list)} labels "
                              f"({', '.join(label_list)}), in that order")
        weights = dict(zip(label_list, values))
    bad = [label for label, w in weights.items() if not w > 0 or not np.isfinite(w)]
    if bad:
        raise OptionError(f"--class_weights: the weight of {bad[0]!r} is {weights[bad[0]]}; weights must be above 0")
    return weights


def balanced_class_weights(labels, label_list: list[str]) -> dict[str, float]:
    """sklearn's 'balanced': n / (k x n_c) over the classes present (a class absent from training gets 1.0).

    `labels`: class ids (one per row), token label rows (-100 ignored), or multi-hot rows, for which
    the weight of a label is its negatives over its positives (binary cross-entropy's pos_weight).
    """
    first = labels[0]
    if isinstance(first, (list, np.ndarray)) and len(first) and isinstance(first[0], float):
        matrix = np.asarray(labels, dtype=np.float64)
        positives = matrix.sum(axis=0)
        negatives = len(matrix) - positives
        return {label: float(negatives[i] / positives[i]) if positives[i] > 0 else 1.0
                for i, label in enumerate(label_list)}
    ids = np.concatenate([np.asarray(row).ravel() for row in labels]) if isinstance(first, (list, np.ndarray)) \
        else np.asarray(labels)
    ids = ids[ids != -100].astype(int)
    counts = np.bincount(ids, minlength=len(label_list))
    present = int((counts > 0).sum())
    return {label: float(len(ids) / (present * counts[i])) if counts[i] > 0 else 1.0
            for i, label in enumerate(label_list)}


def class_weights_for(spec: str, train_labels, label_list: list[str]) -> dict[str, float]:
    """--class_weights as {label: weight}: given weights, or balanced ones from the training labels."""
    return parse_class_weights(spec, label_list) or balanced_class_weights(train_labels, label_list)


def weighted_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                  labelled_per_step: float | None = None) -> torch.Tensor:
    """Class-weighted loss in float32: rows' (or labelled tokens') weighted losses summed, divided by their count.

    Multi-label (float targets): binary cross-entropy with `pos_weight`. Token labels: divided by
    `labelled_per_step` when given (the length-grouped loss of RecipeTrainer), else by this batch's
    labelled tokens.
    """
    logits, weights = logits.float(), weights.to(logits.device, torch.float32)
    if labels.is_floating_point():
        return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=weights)
    per_item = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                               reduction="none")
    flat = labels.reshape(-1)
    labelled = flat != -100
    total = (per_item[labelled] * weights[flat[labelled]]).sum()
    return total / (labelled_per_step if labelled_per_step else labelled.sum().clamp(min=1))


def l1_penalty(parameters: list[torch.Tensor], l1_lambda: float) -> torch.Tensor:
    """lambda x sum|w| over `parameters`, in float32."""
    return l1_lambda * torch.stack([p.float().abs().sum() for p in parameters]).sum()


TEACHER_LOGITS = "teacher_logits"  # the training rows' column of teacher logits (--teacher_model)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 x KL(softmax(teacher / T) || softmax(student / T)), averaged over the rows (Hinton et al., 2015).

    T^2 keeps the soft targets' gradients on the scale of the hard ones' as T changes.
    """
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * temperature ** 2
