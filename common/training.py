"""Trainer set-up: dynamic padding, length-grouped batches, best checkpoint by the task metric.

`RecipeTrainer` changes two things in `transformers.Trainer`:
- training batches are grouped by length (`train_sampling_strategy="group_by_length"`, our default)
  with the lengths read from the Arrow column in one call, instead of Trainer's row-by-row pass;
- evaluation and prediction run in batches sorted by length (little padding), and both
  `compute_metrics` and `predict()` see the rows in the dataset's own order. (Stock Trainer with
  `group_by_length` shuffles the evaluation order too, and returns predictions in that order.)
"""

import logging

import numpy as np
import pyarrow.compute as pc
from transformers import DataCollatorWithPadding, EarlyStoppingCallback, EvalPrediction, Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import PredictionOutput

logger = logging.getLogger(__name__)


def token_lengths(dataset) -> np.ndarray:
    return pc.list_value_length(dataset.with_format("arrow")["input_ids"]).to_numpy()


def longest_first_order(dataset) -> np.ndarray:
    return np.argsort(-token_lengths(dataset), kind="stable")


def _reorder(values, order):
    if values is None:
        return None
    if isinstance(values, tuple):
        return tuple(_reorder(v, order) for v in values)
    return values[order]


class RecipeTrainer(Trainer):
    def __init__(self, *args, compute_metrics=None, **kwargs):
        self._eval_order = None  # the row order of the last evaluation or prediction
        super().__init__(*args, compute_metrics=self._in_input_order(compute_metrics), **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        train_dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or "input_ids" not in train_dataset.column_names:
            return super()._get_train_sampler(train_dataset)
        batch_size = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthGroupedSampler(batch_size, lengths=token_lengths(train_dataset).tolist())

    def _get_eval_sampler(self, eval_dataset):
        if "input_ids" not in eval_dataset.column_names:
            self._eval_order = None
            return super()._get_eval_sampler(eval_dataset)
        self._eval_order = longest_first_order(eval_dataset)
        return self._eval_order.tolist()

    def _to_input_order(self, values):
        if self._eval_order is None:
            return values
        return _reorder(values, np.argsort(self._eval_order, kind="stable"))

    def _in_input_order(self, compute_metrics):
        if compute_metrics is None:
            return None

        def compute_metrics_in_input_order(prediction: EvalPrediction):
            return compute_metrics(EvalPrediction(predictions=self._to_input_order(prediction.predictions),
                                                  label_ids=self._to_input_order(prediction.label_ids)))

        return compute_metrics_in_input_order

    def predict(self, test_dataset, ignore_keys=None, metric_key_prefix="test"):
        output = super().predict(test_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        return PredictionOutput(predictions=self._to_input_order(output.predictions),
                                label_ids=self._to_input_order(output.label_ids), metrics=output.metrics)


def build_trainer(model, training_args, tokenizer, train_dataset=None, eval_dataset=None, compute_metrics=None,
                  data_collator=None) -> RecipeTrainer:
    """A RecipeTrainer with per-batch padding and, if asked, early stopping on metric_for_best_model."""
    if data_collator is None:
        # Multiples of 8 let GPU tensor cores work on half precision; on CPU they only add padding.
        multiple = 8 if (training_args.bf16 or training_args.fp16) and not training_args.use_cpu else None
        data_collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple)
    callbacks = []
    if training_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=training_args.early_stopping_patience))
    logger.info(f"Training batches: {training_args.train_sampling_strategy}; precision: "
                f"{'bf16' if training_args.bf16 else 'fp16' if training_args.fp16 else 'fp32'}")
    return RecipeTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=data_collator,
        compute_metrics=compute_metrics,
        callbacks=callbacks,
    )


def train_evaluate_predict(trainer: RecipeTrainer, tokenized: dict, args,
                           test_metrics=None) -> tuple[dict, PredictionOutput | None]:
    """Run the stages asked for (--do_train, --do_eval, --do_predict) and collect their metrics.

    `test_metrics` replaces the trainer's compute_metrics for the test set, where the metric depends
    on the split (token classification maps windows back to that split's words).
    """
    needed = {"train": args.do_train, "validation": args.do_eval, "test": args.do_predict}
    missing = [split for split, wanted in needed.items() if wanted and split not in tokenized]
    if missing:
        raise ValueError(f"no {' or '.join(missing)} data for the stages asked for (found: {', '.join(tokenized)})")
    results, prediction = {}, None
    if args.do_train:
        results.update(trainer.train(resume_from_checkpoint=args.resume_from_checkpoint).metrics)
        trainer.save_model()  # the best checkpoint if load_best_model_at_end, with tokenizer and label names
        trainer.save_state()
    if args.do_eval:
        results.update(trainer.evaluate(tokenized["validation"]))
    if args.do_predict:
        if test_metrics is not None:
            trainer.compute_metrics = trainer._in_input_order(test_metrics)
        prediction = trainer.predict(tokenized["test"])
        results.update(prediction.metrics)
    for split in ("train", "eval", "test"):
        split_metrics = {k: v for k, v in results.items() if k.startswith(split + "_")}
        if split_metrics:
            trainer.log_metrics(split, split_metrics)
    return results, prediction
