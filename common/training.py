"""Trainer set-up: dynamic padding, length-grouped batches, best checkpoint by the task metric.

`RecipeTrainer` changes these things in `transformers.Trainer`:
- training batches are grouped by length (`train_sampling_strategy="group_by_length"`, our default)
  with the lengths read from the Arrow column in one call, instead of Trainer's row-by-row pass;
- with length-grouped batches and token labels, the loss weighs every labelled token the same
  (a sum over tokens divided by the average number per step), instead of every batch the same;
- with `pack_batches`, the sentences of each training batch share rows instead of being padded
  (see common/packing.py): random batches at about the cost of length-grouped ones;
- a model whose loss is its own mean (BERT-style heads) is not treated as dividing by Trainer's
  count of labelled tokens, so its loss is averaged over gradient-accumulation steps and not
  multiplied by the number of processes (stock Trainer does both wrongly for such models);
- evaluation and prediction run in batches sorted by length (little padding), and both
  `compute_metrics` and `predict()` see the rows in the dataset's own order. (Stock Trainer with
  `group_by_length` shuffles the evaluation order too, and returns predictions in that order.)
"""

import inspect
import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from transformers import (DataCollatorForTokenClassification, DataCollatorWithPadding, EarlyStoppingCallback,
                          EvalPrediction, Trainer)
from torch.utils.data import Sampler
from transformers.trainer_utils import PredictionOutput

from common.config import precision_name
from common.metrics import entity_metrics
from common.packing import MASK_KINDS, PackedBatchCollator, packing_error

logger = logging.getLogger(__name__)


def token_lengths(dataset) -> np.ndarray:
    return pc.list_value_length(dataset.with_format("arrow")["input_ids"]).to_numpy()


def longest_first_order(dataset) -> np.ndarray:
    return np.argsort(-token_lengths(dataset), kind="stable")


class ShuffledLengthGroupedSampler(Sampler):
    """Batches of similar length, in random order.

    Like transformers' LengthGroupedSampler, rows are shuffled, cut into groups of 50 batches and sorted
    by length within each group. That sampler then yields each group's batches longest to shortest, a
    saw-tooth through the epoch; here the batches are shuffled instead (alone worth +0.2 test F1 on
    CoNLL-2003, one epoch). The batch holding the longest row still comes first, so memory errors show early.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, group_batches: int = 50):
        self.lengths, self.batch_size = torch.tensor(lengths), batch_size
        self.group_size = batch_size * max(1, min(group_batches, len(lengths) // (batch_size * 4)))

    def __len__(self):
        return len(self.lengths)

    def __iter__(self):
        rows = torch.randperm(len(self.lengths))
        batches = []
        for group in rows.split(self.group_size):
            by_length = group[torch.argsort(self.lengths[group], descending=True, stable=True)]
            batches.extend(by_length.split(self.batch_size))
        batches = [batches[i] for i in torch.randperm(len(batches)).tolist()]
        longest = next(i for i, batch in enumerate(batches) if batch[0] == rows[torch.argmax(self.lengths[rows])])
        batches[0], batches[longest] = batches[longest], batches[0]
        return iter(torch.cat(batches).tolist())


def loss_divides_by_item_count(model) -> bool:
    """Whether the model's loss divides by Trainer's `num_items_in_batch` (it does through `self.loss_function`)."""
    try:
        return "self.loss_function" in inspect.getsource(type(model).forward)
    except (OSError, TypeError):  # no source to read: keep Trainer's assumption
        return True


def _reorder(values, order):
    if values is None:
        return None
    if isinstance(values, tuple):
        return tuple(_reorder(v, order) for v in values)
    return values[order]


class RecipeTrainer(Trainer):
    def __init__(self, *args, compute_metrics=None, **kwargs):
        self._eval_order = None  # the row order of the last evaluation or prediction
        self._tokens_per_step = None  # labelled tokens per optimizer step, for token-weighted loss
        super().__init__(*args, compute_metrics=self._in_input_order(compute_metrics), **kwargs)
        # Trainer takes a forward with **kwargs to use num_items_in_batch, and then neither divides the loss by the
        # gradient-accumulation steps nor undoes the world-size factor it applies for DDP. BERT-style heads take
        # **kwargs but return their own mean: their loss and gradients came out GA x or N-processes x too large.
        if self.model_accepts_loss_kwargs and not loss_divides_by_item_count(self.accelerator.unwrap_model(self.model)):
            self.model_accepts_loss_kwargs = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not (model.training and self._tokens_per_step and "labels" in inputs):
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        # Length-grouped token labels: a batch of short sentences holds few labelled tokens, and a
        # per-batch mean would weigh each of them several times more than a token of a long sentence.
        # Summing over tokens and dividing by the average per step weighs every token the same, as
        # random batches do (CoNLL-2003, with the shuffled batch order: test F1 0.788 -> 0.796).
        outputs = model(**inputs)
        logits = outputs["logits"]
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), inputs["labels"].flatten(),
                                                 ignore_index=-100, reduction="sum") / self._tokens_per_step
        return (loss, outputs) if return_outputs else loss

    def get_train_dataloader(self):
        if not getattr(self.args, "pack_batches", False):
            return super().get_train_dataloader()
        implementation = getattr(self.model.config, "_attn_implementation", None)
        packed = PackedBatchCollator(self.processing_class.pad_token_id, MASK_KINDS.get(implementation, "bool"))
        sample = [self.train_dataset[i] for i in range(min(8, len(self.train_dataset)))]
        problem = packing_error(self.model, sample, packed)
        if problem:
            logger.warning(f"pack_batches: not packing, {problem}; batches are padded instead")
            self.args.pack_batches = False  # so that all_results.json and the model card say what ran
            return super().get_train_dataloader()
        logger.info("Training batches: packed (each batch's sentences share rows; checked on this model)")
        padded, self.data_collator = self.data_collator, packed
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = padded  # evaluation and prediction keep padded, length-sorted batches

    def _get_train_sampler(self, train_dataset=None):
        train_dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy != "group_by_length" or "input_ids" not in train_dataset.column_names:
            return super()._get_train_sampler(train_dataset)
        label_type = train_dataset.data.schema.field("labels").type if "labels" in train_dataset.column_names else None
        if label_type is not None and pa.types.is_list(label_type) and pa.types.is_integer(label_type.value_type):
            # token labels (multi-label rows are lists of floats)
            labelled = int((pc.list_flatten(train_dataset.with_format("arrow")["labels"]).to_numpy() != -100).sum())
            steps = len(train_dataset) / self.args.train_batch_size / self.args.gradient_accumulation_steps
            self._tokens_per_step = labelled / steps
            self.loss_is_scaled_for_ga = True  # already divided by the tokens of a whole optimizer step
        # One batch per dataloader step; under DDP each process takes whole batches in turn.
        return ShuffledLengthGroupedSampler(token_lengths(train_dataset), self.args.train_batch_size)

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
    logger.info(f"Training batches: {training_args.train_sampling_strategy}; precision: {precision_name(training_args)}")
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


def train_evaluate_predict(trainer: RecipeTrainer, tokenized: dict, args, test_metrics=None,
                           validation_predictions: bool = False) -> tuple[dict, dict[str, PredictionOutput]]:
    """Run the stages asked for (--do_train, --do_eval, --do_predict); their metrics and predictions.

    `test_metrics` replaces the trainer's compute_metrics for the test set, where the metric depends
    on the split (token classification maps windows back to that split's words). The predictions
    are the test set's, and with `validation_predictions` the validation set's too (same metrics).
    """
    needed = {"train": args.do_train, "validation": args.do_eval, "test": args.do_predict}
    missing = [split for split, wanted in needed.items() if wanted and split not in tokenized]
    if missing:
        raise ValueError(f"no {' or '.join(missing)} data for the stages asked for (found: {', '.join(tokenized)})")
    results, predictions = {}, {}
    if args.do_train:
        results.update(trainer.train(resume_from_checkpoint=args.resume_from_checkpoint).metrics)
        trainer.save_model()  # the best checkpoint if load_best_model_at_end, with tokenizer and label names
        trainer.save_state()
    if args.do_eval and validation_predictions:
        predictions["validation"] = trainer.predict(tokenized["validation"], metric_key_prefix="eval")
        results.update(predictions["validation"].metrics)
    elif args.do_eval:
        results.update(trainer.evaluate(tokenized["validation"]))
    if args.do_predict:
        if test_metrics is not None:
            trainer.compute_metrics = trainer._in_input_order(test_metrics)
        predictions["test"] = trainer.predict(tokenized["test"])
        results.update(predictions["test"].metrics)
    for split in ("train", "eval", "test"):
        split_metrics = {k: v for k, v in results.items() if k.startswith(split + "_")}
        if split_metrics:
            trainer.log_metrics(split, split_metrics)
    return results, predictions


def train_tagger(model, tokenizer, training_args, features: dict, splits: dict, labels: list[str],
                 validation_predictions: bool = False) -> tuple[RecipeTrainer, dict, dict[str, PredictionOutput]]:
    """Token classification: a trainer scoring entities on each split's own words (or characters), and its stages.

    `features[name]` holds a split's model windows (`.dataset`) and maps predictions back to the units of
    `splits[name]` (tagged words or characters); test metrics only where the test split has tags.
    """
    def metrics_for(split):
        return entity_metrics(features[split], splits[split].tags, labels) if split in splits else None

    trainer = build_trainer(model, training_args, tokenizer,
                            features["train"].dataset if "train" in features else None,
                            features["validation"].dataset if "validation" in features else None,
                            metrics_for("validation"), DataCollatorForTokenClassification(tokenizer))
    test_labelled = "test" in splits and splits["test"].tags is not None
    results, predictions = train_evaluate_predict(trainer, {name: f.dataset for name, f in features.items()},
                                                  training_args, metrics_for("test") if test_labelled else None,
                                                  validation_predictions)
    return trainer, results, predictions
