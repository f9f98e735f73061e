"""`RecipeTrainer`: transformers' Trainer with the overrides that need its loop; each concern's logic lives in its
own module.

- The loss (common/training/losses.py `TrainingLoss`): class weights, token labels weighed the same in
  length-grouped batches, distillation (the rows' `teacher_logits` column kept for it), the L1 penalty
  (logged as `l1_penalty`), and one rule for gradient accumulation that Trainer reads
  (`loss_is_scaled_for_ga`): `compute_loss`, `log`, `_set_signature_columns_if_needed`.
- Length-grouped training batches in random order (common/training/samplers.py): `_get_train_sampler`;
  with `--pack_batches`, sentences share rows (common/training/packing.py): `get_train_dataloader`.
- `--time_budget`: the schedule over the share of the time spent (common/training/time_budget.py):
  `create_scheduler`.
- Parameters a model trains at a rate of its own (`own_parameter_groups`: a CRF tagger's transitions at
  `--crf_learning_rate`): `create_optimizer`. The final folder is written by common/training/final_save.py:
  `save_final_model`.
- A run resumed from a checkpoint reports `train_loss` over the whole run (each checkpoint keeps the loss
  summed so far in `run_loss.json`); a checkpoint counts only once whole (`checkpoint_complete.json`, older
  ones rotated away after it): `train`, `_save_checkpoint`.
- Evaluation and prediction run in batches sorted by length, and `compute_metrics` and `predict()` see the
  rows in the dataset's own order, the windows of one long text pooled into one row (`--window_pooling`):
  `_get_eval_sampler`, `use_metrics`, `evaluate`, `predict`. (Stock Trainer with `group_by_length`
  shuffles the evaluation order, and returns predictions in it.)
"""

import json
import logging
from pathlib import Path

import numpy as np
from transformers import EvalPrediction, Trainer
from transformers.trainer_utils import PredictionOutput, TrainOutput, rotate_checkpoints

from common.tokens.long_text import first_of_each, pool_windows
from common.training.checkpoints import mark_complete, unmark
from common.training.final_save import save_final_model
from common.training.losses import TEACHER_LOGITS, TrainingLoss, own_mean_loss
from common.training.packing import packing_collator
from common.training.samplers import ShuffledLengthGroupedSampler, in_order, longest_first_order, token_lengths

logger = logging.getLogger(__name__)

RUN_LOSS_FILE = "run_loss.json"  # in each checkpoint: the training loss summed over every step up to it


class RecipeTrainer(Trainer):
    """Trainer with the recipes' batch order, losses, CRF and LoRA saving, and results in input order."""

    def __init__(self, model=None, *args, compute_metrics=None, window_pooling: str = "mean", distillation=None,
                 time_budget=None, **kwargs):
        own_mean_loss(model)
        super().__init__(model, *args, **kwargs)
        self.time_budget = time_budget  # --time_budget: its clock (a callback) and the schedule over it
        if time_budget is not None:
            self.add_callback(time_budget)
        self.loss = TrainingLoss(self.model, self.args, self.train_dataset, distillation,
                                 self.model_accepts_loss_kwargs, self.get_decay_parameter_names)
        self.loss_is_scaled_for_ga = self.loss.scaled_for_ga  # read by Trainer's training_step
        self._eval_order = None  # the row order of the last evaluation or prediction
        self._documents = None  # and the document of each of its rows, when long texts were windowed
        self.window_pooling = window_pooling  # how a document's windows make its logits (--window_pooling)
        self.use_metrics(compute_metrics)
        self.packs_batches = False  # set when a training dataloader really packs

    # --- the loss
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The run's TrainingLoss, on top of Trainer's own computation of the model's loss."""
        def models_own_loss(batch):
            return super(RecipeTrainer, self).compute_loss(model, batch, return_outputs=True,
                                                           num_items_in_batch=num_items_in_batch)

        steps = getattr(self, "current_gradient_accumulation_steps", 1)  # set by the training loop, once it runs
        loss, outputs = self.loss(model, inputs, models_own_loss, steps)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, start_time=None):
        """Trainer's log, with the mean L1 penalty since the last log beside the loss."""
        super().log(self.loss.logged(logs), start_time)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.loss.distillation is not None and TEACHER_LOGITS not in self._signature_columns:
            self._signature_columns.append(TEACHER_LOGITS)  # the rows' teacher logits reach compute_loss

    # --- training batches: length-grouped, or packed
    def _get_train_sampler(self, train_dataset=None):
        train_dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or "input_ids" not in train_dataset.column_names:
            return super()._get_train_sampler(train_dataset)
        # One batch per dataloader step; under DDP each process takes whole batches in turn.
        return ShuffledLengthGroupedSampler(token_lengths(train_dataset), self.args.train_batch_size,
                                            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed)

    def get_train_dataloader(self):
        """Trainer's training batches, or with --pack_batches sentences packed into shared rows (checked on the model)."""
        if not getattr(self.args, "pack_batches", False):  # plain TrainingArguments have no such flag
            return super().get_train_dataloader()
        if getattr(self.model, "sequence_loss", False):
            logger.info("pack_batches: not packing for a loss over whole rows (a CRF's transitions would cross "
                        "sentences)")
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

    # --- parameters with a learning rate of their own, and the final folder
    def create_optimizer(self, model=None):
        """Trainer's optimizer, with the groups the model asks for (`own_parameter_groups(args)`) taken out of it."""
        optimizer = super().create_optimizer(model)
        own_groups = getattr(self.model, "own_parameter_groups", None)
        if own_groups is not None:
            groups = own_groups(self.args)
            taken = {id(p) for group in groups for p in group["params"]}
            for group in optimizer.param_groups:
                group["params"] = [p for p in group["params"] if id(p) not in taken]
            for group in groups:
                optimizer.add_param_group(group)
        return optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """Trainer's schedule over the steps, or with --time_budget the same shape over the share of the time spent."""
        if self.time_budget is not None and self.lr_scheduler is None:
            self.time_budget.warmup = self.args.get_warmup_steps(num_training_steps) / num_training_steps
            self.lr_scheduler = self.time_budget.scheduler(optimizer if optimizer is not None else self.optimizer)
        return super().create_scheduler(num_training_steps, optimizer)

    def save_final_model(self, output_dir=None) -> None:
        """The final folder, loadable by pipeline() as it is (common/training/final_save.py)."""
        save_final_model(self, output_dir)

    # --- train_loss over the whole run when resumed; checkpoints that count only once whole
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
        # Logged losses are in _total_loss_scalar (means over the processes); those since the last log are still in
        # each process's _tr_loss, averaged here as Trainer's log would (every process saves a checkpoint)
        since_log = self.accelerator.gather(self._tr_loss.detach().reshape(1)).mean().item()
        if self.args.should_save:
            unmark(folder)  # not complete until every file below is written
            loss_sum = getattr(self, "_loss_sum_before", 0.0) + self._total_loss_scalar + since_log
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

    # --- evaluation in length-sorted batches, results in input order
    def _get_eval_sampler(self, eval_dataset):
        if "input_ids" not in eval_dataset.column_names:
            self._eval_order = None
            return super()._get_eval_sampler(eval_dataset)
        self._eval_order = longest_first_order(eval_dataset)
        return self._eval_order.tolist()

    def _to_input_order(self, values, labels: bool = False):
        """Rows back in the dataset's order; windows of one document (a `document` column) pooled into one row."""
        values = in_order(values, self._eval_order)
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

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        """Trainer's evaluate(), metrics computed on rows in the dataset's order (one per document)."""
        self._documents = documents_of(eval_dataset if eval_dataset is not None else self.eval_dataset)
        return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix="test"):
        """Trainer's predict(), with predictions and labels in the dataset's order (one per document)."""
        self._documents = documents_of(test_dataset)
        output = super().predict(test_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        return PredictionOutput(predictions=self._to_input_order(output.predictions),
                                label_ids=self._to_input_order(output.label_ids, labels=True), metrics=output.metrics)


def documents_of(dataset) -> np.ndarray | None:
    """The `document` of each row (windows of long texts, common/tokens/long_text.py), read before Trainer drops it."""
    columns = getattr(dataset, "column_names", None) or []
    return np.asarray(dataset["document"]) if "document" in columns else None
