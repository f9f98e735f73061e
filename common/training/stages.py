"""The stages of a recipe run: a RecipeTrainer set up for the task, then train, evaluate and predict as asked.

Batches are padded per batch to their own longest row; early stopping on metric_for_best_model when
`--early_stopping_patience` is given; token classification scores entities on each split's own words.
"""

import logging
import pickle

from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding, EarlyStoppingCallback
from transformers.trainer_utils import PredictionOutput

from common.config.arguments import parse_duration
from common.config.errors import OptionError
from common.config.hardware import keep_freed_memory, precision_name
from common.evaluation.metrics import entity_metrics
from common.training.checkpoints import checkpoint_to_resume
from common.training.guards import StopOnNonFiniteGradients
from common.training.time_budget import TimeBudget
from common.training.trainer import RecipeTrainer

logger = logging.getLogger(__name__)


def build_trainer(model, training_args, tokenizer, train_dataset=None, eval_dataset=None, compute_metrics=None,
                  data_collator=None, window_pooling: str = "mean", distillation=None) -> RecipeTrainer:
    """A RecipeTrainer with per-batch padding and, if asked, early stopping on metric_for_best_model; the windows
    of a long text pooled by `window_pooling` (--long_text windows); `distillation` (DistillationArguments) when
    the training rows carry a teacher's logits."""
    if data_collator is None:
        # Multiples of 8 let GPU tensor cores work on half precision; on CPU they only add padding.
        multiple = 8 if (training_args.bf16 or training_args.fp16) and not training_args.use_cpu else None
        data_collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=multiple)
    if training_args.do_train and eval_dataset is None and training_args.eval_strategy != "no":
        raise OptionError(f"--eval_strategy {training_args.eval_strategy.value} needs validation data and there is "
                          "none: give --validation_file (or a --validation_split above 0), or set --eval_strategy no")
    check_metric_for_best_model(training_args, compute_metrics)
    callbacks = [StopOnNonFiniteGradients()]
    budget = None
    if getattr(training_args, "time_budget", None):
        kind = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)
        budget = TimeBudget(parse_duration(training_args.time_budget), kind)
    if training_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=training_args.early_stopping_patience))
    logger.info(f"Training batches: {training_args.train_sampling_strategy}; precision: {precision_name(training_args)}")
    keep_freed_memory()  # a step's large blocks are reused instead of page-faulted back in
    return RecipeTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=data_collator,
        compute_metrics=compute_metrics,
        callbacks=callbacks,
        window_pooling=window_pooling,
        distillation=distillation,
        time_budget=budget,
    )


def check_metric_for_best_model(args, compute_metrics) -> None:
    """--metric_for_best_model must be one the evaluation reports: Trainer would only find out after an epoch."""
    names = getattr(compute_metrics, "names", None)
    metric = args.metric_for_best_model
    if not (metric and names and (args.load_best_model_at_end or args.early_stopping_patience)):
        return
    if metric.removeprefix("eval_") not in ["loss", *names]:
        raise OptionError(f"--metric_for_best_model {metric}: evaluation reports no such metric (it reports loss, "
                          f"{', '.join(names[:12])}{', ...' if len(names) > 12 else ''})")


def train_evaluate_predict(trainer: RecipeTrainer, tokenized: dict, run, test_metrics=None,
                           validation_predictions: bool = False) -> tuple[dict, dict[str, PredictionOutput]]:
    """Run the stages asked for (--do_train, --do_eval, --do_predict); their metrics and predictions.

    `test_metrics` replaces the trainer's compute_metrics for the test set, where the metric depends
    on the split (token classification maps windows back to that split's words). The predictions
    are the test set's, and with `validation_predictions` the validation set's too (same metrics).
    """
    args = run.args
    needed = {"train": ("--do_train", "--train_file"), "validation": ("--do_eval", "--validation_file"),
              "test": ("--do_predict", "--test_file")}
    found = ", ".join(tokenized) or "none"
    for split, (stage, file_flag) in needed.items():
        if getattr(args, stage[2:]) and split not in tokenized:
            raise OptionError(f"{stage} needs {split} data and there is none (splits found: {found}): give "
                              f"{file_flag}, or set {stage} False")
    results, predictions = {}, {}
    if args.do_train:
        checkpoint = checkpoint_to_resume(args, run.resume_places())
        run.make_room()  # data and model are loaded: an unfinished run's leftovers may go now
        results.update(train(trainer, checkpoint).metrics)
        if trainer.time_budget is not None:
            results["time_budget"] = trainer.time_budget.report(trainer.state.global_step)
        if trainer.state.global_step == 0:
            raise OptionError("training took 0 steps, so the model learned nothing: check --num_train_epochs, "
                              "--max_steps and the size of the training data")
    run.stage()  # the final outputs go to a staging folder, moved into --output_dir when the run ends
    if args.do_train:
        trainer.save_final_model()  # the best checkpoint if load_best_model_at_end, with tokenizer and label names
        trainer.save_state()
    if args.do_eval and validation_predictions:
        predictions["validation"] = trainer.predict(tokenized["validation"], metric_key_prefix="eval")
        results.update(predictions["validation"].metrics)
    elif args.do_eval:
        results.update(trainer.evaluate(tokenized["validation"]))
    if args.do_predict:
        if test_metrics is not None:
            trainer.use_metrics(test_metrics)
        predictions["test"] = trainer.predict(tokenized["test"])
        results.update(predictions["test"].metrics)
    for split in ("train", "eval", "test"):
        split_metrics = {k: v for k, v in results.items() if k.startswith(split + "_")}
        if split_metrics:
            trainer.log_metrics(split, split_metrics)
    return results, predictions


def train(trainer: RecipeTrainer, checkpoint: str | None):
    """trainer.train(), with a checkpoint that cannot be loaded safely reported as such."""
    try:
        return trainer.train(resume_from_checkpoint=checkpoint)
    except pickle.UnpicklingError as error:  # torch.load(weights_only=True) refused a pickled object
        raise OptionError(f"--resume_from_checkpoint {checkpoint}: a file in it holds pickled Python objects that "
                          f"are not loaded, for safety ({str(error).splitlines()[0][:160]}); resume only from "
                          "checkpoints you wrote, or start again with --overwrite_output_dir True") from None


def train_tagger(model, tokenizer, run, features: dict, splits: dict, labels: list[str],
                 validation_predictions: bool = False) -> tuple[RecipeTrainer, dict, dict[str, PredictionOutput]]:
    """Token classification: a trainer scoring entities on each split's own words (or characters), and its stages.

    `features[name]` holds a split's model windows (`.dataset`) and maps predictions back to the units of
    `splits[name]` (tagged words or characters); test metrics only where the test split has tags.
    """
    trainer = tagger_trainer(model, tokenizer, run.args, features, splits, labels)
    test_labelled = "test" in splits and splits["test"].tags is not None
    test_metrics = entity_metrics(features["test"], splits["test"].tags, labels, trainer.model) \
        if test_labelled else None
    results, predictions = train_evaluate_predict(trainer, {name: f.dataset for name, f in features.items()},
                                                  run, test_metrics, validation_predictions)
    return trainer, results, predictions


def tagger_trainer(model, tokenizer, training_args, features: dict, splits: dict, labels: list[str]) -> RecipeTrainer:
    """A token classifier's RecipeTrainer: entity metrics on the validation split's own words (or characters)."""
    metrics = entity_metrics(features["validation"], splits["validation"].tags, labels, model) \
        if "validation" in features and "validation" in splits else None
    return build_trainer(model, training_args, tokenizer,
                         features["train"].dataset if "train" in features else None,
                         features["validation"].dataset if "validation" in features else None,
                         metrics, DataCollatorForTokenClassification(tokenizer))
