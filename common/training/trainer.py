"""`RecipeTrainer`: transformers' Trainer with one small override per concern.

- Length-grouped training batches (`train_sampling_strategy="group_by_length"`, our default), in
  random order: `_get_train_sampler`.
- Token labels in length-grouped batches weigh every labelled token the same (a sum over tokens
  divided by the average number per optimizer step) instead of every batch the same: `compute_loss`.
- A model whose loss is its own mean (BERT-style heads) is not taken to divide by Trainer's count of
  labelled tokens, so its loss is averaged over gradient-accumulation steps and not multiplied by the
  number of processes (stock Trainer does both wrongly for such models): `own_mean_loss`, before
  Trainer's set-up reads it.
- `--class_weights` and `--l1_lambda` (common/training/losses.py): `compute_loss`, with the L1 penalty
  logged beside the loss as `l1_penalty`: `log`.
- Distillation (`--teacher_model`, common/training/distillation.py): the training rows' `teacher_logits`
  column is kept for `compute_loss` (it is no model input), which mixes the labels' loss with the
  distillation loss on them: `_set_signature_columns_if_needed`, `compute_loss`.
- A CRF head (`model.crf`, common/models/crf.py, whose forward returns the CRF's loss): its parameters
  train at `crf_learning_rate`, batches are not packed (transitions would cross sentences), and the
  final model is saved without it (pipeline() loads the emissions alone) beside `crf.safetensors`:
  `create_optimizer`, `get_train_dataloader`, `save_final_model`.
- LoRA (`--lora_r`, a peft model): the final folder holds the adapters merged into the weights, and
  `adapter/` the adapter alone: `save_final_model`.
- With `pack_batches`, the sentences of each training batch share rows instead of being padded
  (common/training/packing.py): `get_train_dataloader`.
- A run resumed from a checkpoint reports `train_loss` over the whole run, not only the steps after
  the checkpoint: each checkpoint keeps the loss summed so far (`run_loss.json`): `_save_checkpoint`, `train`.
- A checkpoint counts only once whole: `checkpoint_complete.json` (common/training/checkpoints.py) is
  written after its last file, and older checkpoints are rotated away only after that: `_save_checkpoint`.
- Evaluation and prediction run in batches sorted by length, and both `compute_metrics` and
  `predict()` see the rows in the dataset's own order: `_get_eval_sampler`, `use_metrics`, `predict`.
  (Stock Trainer with `group_by_length` shuffles the evaluation order, and returns predictions in it.)
  Windows of one long text (`--long_text windows`: a `document` column) are pooled into one row per
  document (`--window_pooling`) for both: `evaluate`, `predict`, `_to_input_order`.
"""

import copy
import inspect
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from transformers import EvalPrediction, Trainer
from transformers.trainer_utils import PredictionOutput, TrainOutput, rotate_checkpoints

from common.models.crf import CRF_LEARNING_RATE, save_crf
from common.models.lora import is_lora
from common.tokens.long_text import first_of_each, pool_windows
from common.training.checkpoints import mark_complete, unmark
from common.training.losses import TEACHER_LOGITS, class_weights_for, distillation_loss, l1_penalty, weighted_loss
from common.training.packing import packing_collator
from common.training.samplers import ShuffledLengthGroupedSampler, longest_first_order, token_lengths

logger = logging.getLogger(__name__)

RUN_LOSS_FILE = "run_loss.json"  # in each checkpoint: the training loss summed over every step up to it


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


def _reorder(values, order):
    if values is None:
        return None
    if isinstance(values, tuple):
        return tuple(_reorder(v, order) for v in values)
    return values[order]


class RecipeTrainer(Trainer):
    """Trainer with the recipes' batch order, losses, CRF and LoRA saving, and results in input order."""

    def __init__(self, model=None, *args, compute_metrics=None, window_pooling: str = "mean", distillation=None,
                 **kwargs):
        own_mean_loss(model)
        super().__init__(model, *args, **kwargs)
        # DistillationArguments when the training rows carry a teacher's logits (--teacher_model)
        self.distillation = distillation if getattr(distillation, "teacher_model", None) else None
        self._eval_order = None  # the row order of the last evaluation or prediction
        self._documents = None  # and the document of each of its rows, when long texts were windowed
        self.window_pooling = window_pooling  # how a document's windows make its logits (--window_pooling)
        self.use_metrics(compute_metrics)
        self.packs_batches = False  # set when a training dataloader really packs
        self.tokens_per_step = None
        self.crf = getattr(self.model, "crf", None)
        if self.crf is not None:  # (--class_weights with --crf is refused when parsed)
            self.loss_is_scaled_for_ga = False  # a mean over the batch's sentences: Trainer divides by GA
        elif self.args.train_sampling_strategy == "group_by_length":
            self.tokens_per_step = labelled_tokens_per_step(self.train_dataset, self.args)
        if self.tokens_per_step:
            self.loss_is_scaled_for_ga = True  # divided by the labelled tokens of a whole optimizer step
        self.class_weights = None  # {label: weight}, from --class_weights and the whole training split
        if getattr(self.args, "class_weights", None) and self.train_dataset is not None \
                and "labels" in self.train_dataset.column_names:
            names = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
            self.class_weights = class_weights_for(self.args.class_weights, self.train_dataset["labels"], names)
            self._class_weight_tensor = torch.tensor(list(self.class_weights.values()))
            logger.info("Class weights: " + ", ".join(f"{k} {v:.4g}" for k, v in self.class_weights.items()))
            if not self.tokens_per_step:
                self.loss_is_scaled_for_ga = False  # a mean over the batch's rows or tokens: Trainer divides by GA
        self._l1_parameters, self._l1_values = None, []

    # --- length-grouped training batches
    def _get_train_sampler(self, train_dataset=None):
        train_dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or "input_ids" not in train_dataset.column_names:
            return super()._get_train_sampler(train_dataset)
        # One batch per dataloader step; under DDP each process takes whole batches in turn.
        return ShuffledLengthGroupedSampler(token_lengths(train_dataset), self.args.train_batch_size,
                                            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed)

    # --- train_loss over the whole run when resumed
    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        """Trainer's train(); resumed from a checkpoint, train_loss covers the whole run."""
        self._loss_sum_before, steps_before = 0.0, 0
        if isinstance(resume_from_checkpoint, str):
            saved = Path(resume_from_checkpoint) / RUN_LOSS_FILE
            if saved.is_file():
                record = json.loads(saved.read_text())
                self._loss_sum_before, steps_before = record["loss_sum"], record["global_step"]
            else:
                logger.warning(f"{resume_from_checkpoint} has no {RUN_LOSS_FILE}: train_loss will cover only the "
                               "steps after it")
        output = super().train(resume_from_checkpoint, trial, **kwargs)
        if steps_before and output.global_step:
            loss = (self._loss_sum_before + output.training_loss * (output.global_step - steps_before)) / output.global_step
            output = TrainOutput(output.global_step, loss, {**output.metrics, "train_loss": loss})
        return output

    def _save_checkpoint(self, model, trial):
        run_dir = Path(self._get_output_dir(trial))
        folder = run_dir / f"checkpoint-{self.state.global_step}"
        if self.args.should_save:
            unmark(folder)  # not complete until every file below is written
            # Logged losses are in _total_loss_scalar; those since the last log are still in _tr_loss.
            loss_sum = getattr(self, "_loss_sum_before", 0.0) + self._total_loss_scalar + self._tr_loss.item()
            folder.mkdir(parents=True, exist_ok=True)
            (folder / RUN_LOSS_FILE).write_text(json.dumps({"global_step": self.state.global_step,
                                                            "loss_sum": loss_sum}))
        # Older checkpoints are rotated away only once this one is marked complete: a kill in between
        # must leave a whole checkpoint to resume from.
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        if self.args.should_save:
            mark_complete(folder)
            rotate_checkpoints(str(run_dir), save_total_limit=limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)

    # --- distillation: the training rows' teacher logits reach compute_loss
    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.distillation is not None and TEACHER_LOGITS not in self._signature_columns:
            self._signature_columns.append(TEACHER_LOGITS)

    # --- token-weighted loss, class weights, L1 penalty, distillation
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's loss, or the token- and class-weighted one; mixed with the distillation loss on the
        teacher's logits when the rows carry them; plus the L1 penalty when asked."""
        teacher_logits = inputs.pop(TEACHER_LOGITS, None)
        own_loss = model.training and "labels" in inputs and (self.tokens_per_step or self.class_weights)
        if not own_loss:  # with a CRF, the model's forward returns the CRF's loss
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                                 num_items_in_batch=num_items_in_batch)
        else:
            # Length-grouped token labels: a batch of short sentences holds few labelled tokens, and a
            # per-batch mean would weigh each of them several times more than a token of a long sentence.
            # Summing over tokens and dividing by the average per step weighs every token the same, as
            # random batches do (its effect on CoNLL-2003: docs/benchmarks.md).
            outputs = model(**inputs)
            weights = self._class_weight_tensor if self.class_weights else torch.ones(outputs["logits"].shape[-1])
            loss = weighted_loss(outputs["logits"], inputs["labels"], weights, self.tokens_per_step)
        if model.training and teacher_logits is not None:
            soft = distillation_loss(outputs["logits"], teacher_logits, self.distillation.distill_temperature)
            if self.loss_scaled_for_ga(num_items_in_batch):  # Trainer will not divide this loss by the GA steps
                soft = soft / self.current_gradient_accumulation_steps
            alpha = self.distillation.distill_alpha
            loss = alpha * loss + (1 - alpha) * soft
        if model.training and getattr(self.args, "l1_lambda", 0):
            penalty = l1_penalty(self.l1_parameters(), self.args.l1_lambda)
            self._l1_values.append(penalty.detach())
            if self.loss_scaled_for_ga(num_items_in_batch):  # Trainer will not divide this loss by the GA steps
                penalty = penalty / self.current_gradient_accumulation_steps
            loss = loss + penalty
        return (loss, outputs) if return_outputs else loss

    def loss_scaled_for_ga(self, num_items_in_batch) -> bool:
        """Whether training_step leaves the loss undivided by the accumulation steps (its own rule)."""
        if self.loss_is_scaled_for_ga is not None:
            return self.loss_is_scaled_for_ga
        return bool(self.model_accepts_loss_kwargs and num_items_in_batch is not None) or \
            self.compute_loss_func is not None

    def l1_parameters(self) -> list[torch.Tensor]:
        """The parameters weight decay covers (Trainer's rule: not biases or norm weights)."""
        if self._l1_parameters is None:
            names = set(self.get_decay_parameter_names(self.model))
            self._l1_parameters = [p for n, p in self.model.named_parameters() if n in names and p.requires_grad]
        return self._l1_parameters

    def log(self, logs, start_time=None):
        """Trainer's log, with the mean L1 penalty since the last log beside the loss."""
        if self._l1_values and "loss" in logs:  # the mean penalty of the micro-batches since the last log
            logs["l1_penalty"] = round(torch.stack(self._l1_values).mean().item(), 6)
            self._l1_values = []
        super().log(logs, start_time)

    # --- CRF: its own learning rate; saved beside the model
    def create_optimizer(self, model=None):
        """Trainer's optimizer, with the CRF's parameters in their own group at --crf_learning_rate."""
        optimizer = super().create_optimizer(model)
        rate = getattr(self.args, "crf_learning_rate", None)
        if self.crf is not None:
            rate = CRF_LEARNING_RATE if rate is None else rate
            crf_parameters = {id(p) for p in self.crf.parameters()}
            for group in optimizer.param_groups:
                group["params"] = [p for p in group["params"] if id(p) not in crf_parameters]
            optimizer.add_param_group({"params": list(self.crf.parameters()), "lr": rate, "weight_decay": 0.0})
        return optimizer

    def save_final_model(self, output_dir=None) -> None:
        """The final folder, loadable by pipeline() as it is: a LoRA model merged (the adapter alone in adapter/),
        a CRF tagger saved as a plain token classifier beside crf.safetensors. Anything else: `save_model`.

        Checkpoints go through Trainer's own `save_model`, which keeps the adapters and the CRF inside, for
        resuming and for the best model; only this final save leaves them out.
        """
        output_dir = output_dir or self.args.output_dir
        if is_lora(self.model):
            return self._save_merged(output_dir)
        if self.crf is None:
            return self.save_model(output_dir)
        # Trainer saves self.model (gathering it first under DeepSpeed or FSDP): the model without its CRF for
        # the length of this save, then the CRF on its own.
        del self.model.crf
        try:
            self.save_model(output_dir)
        finally:
            self.model.crf = self.crf
        if self.args.should_save:
            save_crf(self.crf, output_dir)

    def _save_merged(self, output_dir) -> None:
        """LoRA: Trainer's own save of the adapters merged into a copy of the model (pipeline() loads it without
        peft); the adapter alone in adapter/."""
        if not self.args.should_save:
            return
        self.model.save_pretrained(str(Path(output_dir) / "adapter"))
        peft_model, self.model = self.model, copy.deepcopy(self.model).merge_and_unload()
        try:
            self.save_model(output_dir)
        finally:
            self.model = peft_model
        logger.info(f"LoRA adapters merged into the model saved in {output_dir} (the adapter alone: {output_dir}/adapter)")

    # --- packed training batches
    def get_train_dataloader(self):
        """Trainer's training batches, or with --pack_batches sentences packed into shared rows (checked on the model)."""
        if self.crf is not None and getattr(self.args, "pack_batches", False):
            logger.info("pack_batches: not packing with a CRF head (its transitions would cross sentences)")
            return super().get_train_dataloader()
        if not getattr(self.args, "pack_batches", False):  # plain TrainingArguments have no such flag
            return super().get_train_dataloader()
        sample = [self.train_dataset[i] for i in range(min(8, len(self.train_dataset)))]
        packed, problem = packing_collator(self.model, sample, self.processing_class.pad_token_id)
        if problem:
            logger.warning(f"pack_batches: not packing ({problem}); batches are padded instead")
            return super().get_train_dataloader()
        logger.info("Training batches: packed (each batch's sentences share rows; checked on this model)")
        self.packs_batches = True
        padded, self.data_collator = self.data_collator, packed
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = padded  # evaluation and prediction keep padded, length-sorted batches

    # --- evaluation in length-sorted batches, results in input order
    def _get_eval_sampler(self, eval_dataset):
        if "input_ids" not in eval_dataset.column_names:
            self._eval_order = None
            return super()._get_eval_sampler(eval_dataset)
        self._eval_order = longest_first_order(eval_dataset)
        return self._eval_order.tolist()

    def _to_input_order(self, values, labels: bool = False):
        """Rows back in the dataset's order; windows of one document (a `document` column) pooled into one row."""
        if self._eval_order is not None:
            values = _reorder(values, np.argsort(self._eval_order, kind="stable"))
        if self._documents is None or values is None:
            return values
        pool = first_of_each if labels else lambda v, d: pool_windows(v, d, self.window_pooling)
        return tuple(pool(v, self._documents) for v in values) if isinstance(values, tuple) else pool(values, self._documents)

    def use_metrics(self, compute_metrics) -> None:
        """Score evaluations with `compute_metrics`, which sees predictions in the dataset's order (one per document)."""
        def compute_metrics_in_input_order(prediction: EvalPrediction):
            return compute_metrics(EvalPrediction(predictions=self._to_input_order(prediction.predictions),
                                                  label_ids=self._to_input_order(prediction.label_ids, labels=True)))

        self.compute_metrics = compute_metrics_in_input_order if compute_metrics is not None else None

    def _read_documents(self, dataset) -> None:
        """The `document` of each row (windows of long texts, common/tokens/long_text.py), before Trainer drops it."""
        columns = getattr(dataset, "column_names", None) or []
        self._documents = np.asarray(dataset["document"]) if "document" in columns else None

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """Trainer's evaluate(), metrics computed on rows in the dataset's order (one per document)."""
        self._read_documents(eval_dataset if eval_dataset is not None else self.eval_dataset)
        return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix="test"):
        """Trainer's predict(), with predictions and labels in the dataset's order (one per document)."""
        self._read_documents(test_dataset)
        output = super().predict(test_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        return PredictionOutput(predictions=self._to_input_order(output.predictions),
                                label_ids=self._to_input_order(output.label_ids, labels=True), metrics=output.metrics)
