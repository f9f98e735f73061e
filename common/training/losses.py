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

import inspect
import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn.functional as F

from common.config.errors import OptionError

logger = logging.getLogger(__name__)


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


def loss_divides_by_item_count(model) -> bool:
    """Whether the model's loss divides by Trainer's `num_items_in_batch` (it does through `self.loss_function`)."""
    try:
        return "self.loss_function" in inspect.getsource(type(model).forward)
    except (OSError, TypeError):  # no source to read: keep Trainer's assumption
        return True


def own_mean_loss(model) -> None:
    """Tell Trainer that a head taking **kwargs still returns its own mean, unless the model says otherwise.

    Trainer takes a forward with **kwargs to use num_items_in_batch, and then neither divides the loss by
    the gradient-accumulation steps nor undoes the world-size factor it applies for DDP: BERT-style
    heads' loss and gradients came out GA x or N-processes x too large.
    """
    if model is not None and not hasattr(model, "accepts_loss_kwargs") and not loss_divides_by_item_count(model):
        model.accepts_loss_kwargs = False


def labelled_tokens_per_step(dataset, args) -> float | None:
    """Labelled tokens per optimizer step, if the rows carry token labels (lists of class ids)."""
    if dataset is None or "labels" not in dataset.column_names:
        return None
    label_type = dataset.data.schema.field("labels").type
    if not (pa.types.is_list(label_type) and pa.types.is_integer(label_type.value_type)):
        return None  # one label per row (multi-label rows are lists of floats)
    labelled = int((pc.list_flatten(dataset.with_format("arrow")["labels"]).to_numpy() != -100).sum())
    return labelled / (len(dataset) / args.train_batch_size / args.gradient_accumulation_steps)


class TrainingLoss:
    """The training loss of one run, made of the pieces its options ask for, with one rule for gradient accumulation.

    - the model's own loss, or with `--class_weights` or token labels in length-grouped batches our weighted one
      (`weighted_loss`), unless the model's loss scores whole rows (`sequence_loss`: a CRF tagger's);
    - with `--teacher_model`, mixed with the distillation loss on the rows' teacher logits;
    - with `--l1_lambda`, plus the L1 penalty (its mean since the last log is reported as `l1_penalty`).

    `scaled_for_ga` says whether the loss already covers a whole optimizer step (Trainer then does not divide it by
    the accumulation steps): true for our token-weighted loss and for a model whose forward divides by Trainer's
    count of labelled items; false for a mean of the batch's own (a CRF's, class-weighted rows, BERT-style heads).
    The added pieces follow the same rule, so that each counts once per optimizer step.
    """

    def __init__(self, model, args, train_dataset, distillation=None, model_divides_by_items: bool = False,
                 decay_parameter_names=None):
        # decay_parameter_names(model): the parameters weight decay covers (Trainer.get_decay_parameter_names)
        self.distillation = distillation if getattr(distillation, "teacher_model", None) else None
        self.l1_lambda = getattr(args, "l1_lambda", 0)
        sequence_loss = getattr(model, "sequence_loss", False)  # a loss over whole rows (a CRF's): kept as it is
        self.tokens_per_step = None if sequence_loss or args.train_sampling_strategy != "group_by_length" \
            else labelled_tokens_per_step(train_dataset, args)
        self.class_weights = None  # {label: weight}, from --class_weights and the whole training split
        if getattr(args, "class_weights", None) and train_dataset is not None and "labels" in train_dataset.column_names:
            names = [model.config.id2label[i] for i in range(model.config.num_labels)]
            self.class_weights = class_weights_for(args.class_weights, train_dataset["labels"], names)
            self._weights = torch.tensor(list(self.class_weights.values()))
            logger.info("Class weights: " + ", ".join(f"{k} {v:.4g}" for k, v in self.class_weights.items()))
        self.scaled_for_ga = bool(self.tokens_per_step) or (model_divides_by_items and not self.class_weights)
        decayed = set(decay_parameter_names(model)) if self.l1_lambda else set()  # Trainer's rule, asked only for L1
        self._l1_parameters = [p for n, p in model.named_parameters() if n in decayed and p.requires_grad]
        self._l1_values = []

    def __call__(self, model, inputs: dict, models_own_loss, accumulation_steps: int):
        """(loss, outputs) of one micro-batch; `models_own_loss(inputs)` gives the model's own (Trainer's)."""
        teacher_logits = inputs.pop(TEACHER_LOGITS, None)
        if model.training and "labels" in inputs and (self.tokens_per_step or self.class_weights):
            # Length-grouped token labels: a batch of short sentences holds few labelled tokens, and a per-batch
            # mean would weigh each of them several times more than a token of a long sentence. Summing over
            # tokens and dividing by the average per step weighs every token the same, as random batches do.
            outputs = model(**inputs)
            weights = self._weights if self.class_weights else torch.ones(outputs["logits"].shape[-1])
            loss = weighted_loss(outputs["logits"], inputs["labels"], weights, self.tokens_per_step)
        else:
            loss, outputs = models_own_loss(inputs)
        per_step = accumulation_steps if self.scaled_for_ga else 1  # added pieces count once per optimizer step
        if model.training and teacher_logits is not None and self.distillation is not None:
            soft = distillation_loss(outputs["logits"], teacher_logits, self.distillation.distill_temperature)
            loss = self.distillation.distill_alpha * loss + (1 - self.distillation.distill_alpha) * soft / per_step
        if model.training and self.l1_lambda:
            penalty = l1_penalty(self._l1_parameters, self.l1_lambda)
            self._l1_values.append(penalty.detach())
            loss = loss + penalty / per_step
        return loss, outputs

    def logged(self, logs: dict) -> dict:
        """Trainer's logs, with the mean L1 penalty of the micro-batches since the last log beside the loss."""
        if self._l1_values and "loss" in logs:
            logs["l1_penalty"] = round(torch.stack(self._l1_values).mean().item(), 6)
            self._l1_values = []
        return logs
