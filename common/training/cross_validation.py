"""k-fold cross-validation over the training rows (`--cv_folds K`): texts for classification, sentences for NER.

The rows are tokenized once; folds are seeded (the same for the same seed) and, for single-label
data, stratified by label. NER folds are cut over sentences, never between the windows of one. Every fold trains a freshly built model with the same initial weights
(`model_init`, called after `set_seed`) in its own `fold_<k>/` folder and scores the rows it held out,
so that each training row is scored exactly once. The fold's held-out rows never choose its
checkpoint: picking the best of several checkpoints on the very rows that are then reported would
make the estimate optimistic. With `--cv_checkpoint_selection validation` the validation set (if
any) chooses it instead, as `--load_best_model_at_end` does in an ordinary run.

Results: every fold's metrics, their mean and sample standard deviation (ddof=1), returned for
`common/outputs/cv_results.py` to write (`cv_results.json`, the log and `README.md`).
"""

import dataclasses
import gc
import logging
from pathlib import Path

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold
from transformers import DataCollatorForTokenClassification, set_seed

from common.config.errors import OptionError
from common.evaluation.metrics import entity_metrics
from common.tokens.long_text import document_starts
from common.training.stages import build_trainer

logger = logging.getLogger(__name__)


def fold_indices(labels, k: int, seed: int, rows: str = "training rows",
                 stratify: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, held-out rows) of each fold: stratified by label when each row has one label."""
    n = len(labels)
    single = stratify and len(labels) and not isinstance(labels[0], (list, tuple, np.ndarray))
    if k < 2:
        raise OptionError(f"--cv_folds {k}: cross-validation needs at least 2 folds")
    if single:
        counts = np.bincount(np.asarray(labels, dtype=int))
        rarest = int(counts[counts > 0].min())
        if k > rarest:
            raise OptionError(f"--cv_folds {k}: the rarest class has {rarest} training row(s), fewer than the folds; "
                              "each fold must hold one of its rows")
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n), labels))
    if k > n:
        raise OptionError(f"--cv_folds {k}: more folds than the {n} {rows}")
    return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n)))


def summarize(fold_metrics: list[dict]) -> tuple[dict, dict]:
    """Mean and sample standard deviation (ddof=1) of every numeric metric the folds share."""
    keys = [k for k in fold_metrics[0] if all(isinstance(m.get(k), (int, float)) for m in fold_metrics)]
    mean = {k: float(np.mean([m[k] for m in fold_metrics])) for k in keys}
    std = {k: float(np.std([m[k] for m in fold_metrics], ddof=1)) for k in keys}
    return mean, std


def cross_validate(model_init, tokenized: dict, run, compute_metrics, label_list: list[str],
                   tokenizer, window_pooling: str = "mean") -> dict:
    """Classification: folds over the training rows (texts, when windowed), stratified by label (not a score's)."""
    training_args = run.args
    train = training_rows(tokenized, training_args)
    # the folds are over texts: with --long_text windows, a text's windows (rows) stay together
    documents = np.asarray(train["document"]) if "document" in train.column_names else np.arange(len(train))
    row_labels = train["labels"]
    labels = [row_labels[i] for i in document_starts(documents)]
    single = not isinstance(labels[0], (list, float))  # one class a row (not several, nor a score)

    def fold_data(model, train_texts, held_texts):
        held_labels = np.asarray(labels, dtype=object)[held_texts]
        counts = {name: int(sum(1 for y in held_labels if y == i)) for i, name in enumerate(label_list)} \
            if single else None
        train_rows, held_rows = (np.flatnonzero(np.isin(documents, texts)) for texts in (train_texts, held_texts))
        return train.select(train_rows), train.select(held_rows), compute_metrics, {"held_out_label_counts": counts}

    return run_folds(model_init, fold_indices(labels, training_args.cv_folds, training_args.seed, stratify=single),
                     fold_data, run, tokenizer, tokenized.get("validation"), lambda model: compute_metrics,
                     stratified=single, window_pooling=window_pooling)


def cross_validate_tagger(model_init, features: dict, splits: dict, run, label_list: list[str],
                          tokenizer) -> dict:
    """Token classification: folds over the training sentences (or texts), not over their windows, so that a
    long sentence's windows stay in one fold; each held-out fold is scored on entities with seqeval."""
    training_args = run.args
    train, gold = training_rows(features, training_args), splits["train"].tags
    folds = fold_indices(gold, training_args.cv_folds, training_args.seed, "training sentences",
                         stratify=False)  # a sentence has many tags

    def fold_data(model, train_sentences, held_sentences):
        held = train.select_sentences(held_sentences)
        held_gold = [gold[i] for i in held_sentences]
        entities = sum(1 for tags in held_gold for tag in tags if tag.startswith("B-"))
        return (train.select_sentences(train_sentences).dataset, held.dataset,
                entity_metrics(held, held_gold, label_list, model), {"held_out_entities": entities})

    def validation_metrics(model):
        if "validation" not in features:
            return None
        return entity_metrics(features["validation"], splits["validation"].tags, label_list, model)

    return run_folds(model_init, folds, fold_data, run, tokenizer,
                     features["validation"].dataset if "validation" in features else None, validation_metrics,
                     stratified=False, data_collator=DataCollatorForTokenClassification(tokenizer))


def training_rows(tokenized: dict, training_args):
    """The training rows the folds are cut from; without them (or without --do_train), an OptionError."""
    if "train" not in tokenized or not training_args.do_train:
        raise OptionError("--cv_folds needs training data and --do_train: the folds are cut from the training rows")
    return tokenized["train"]


def run_folds(model_init, folds, fold_data, run, tokenizer, validation, validation_metrics,
              stratified: bool, data_collator=None, window_pooling: str = "mean") -> dict:
    """Train a fresh model on each fold's rows and score it on the rows it held out.

    `fold_data(model, training units, held-out units)` gives the fold's training and held-out datasets, the
    `compute_metrics` that scores the held-out ones, and facts to report; `validation_metrics(model)` gives the
    `compute_metrics` of the validation set (a function of the fold's model: a CRF's decoding belongs to it).
    """
    training_args = run.args
    select_on_validation = training_args.cv_checkpoint_selection == "validation" and validation is not None
    run.stage()  # every fold's folder and the summary are moved into --output_dir together, when the run ends
    results = []
    for k, (train_units, held_units) in enumerate(folds):
        fold_dir = Path(training_args.output_dir) / f"fold_{k}"
        changes = {"output_dir": str(fold_dir)}
        if not select_on_validation:  # the held-out rows must not pick the checkpoint they are scored on
            changes.update(eval_strategy="no", save_strategy="no", load_best_model_at_end=False)
        fold_args = dataclasses.replace(training_args, **changes)
        set_seed(training_args.seed)  # the same initial weights (and new head) in every fold
        model = model_init()
        train_data, held_data, held_metrics, facts = fold_data(model, train_units, held_units)
        trainer = build_trainer(model, fold_args, tokenizer, train_data, validation if select_on_validation else None,
                                validation_metrics(model), data_collator, window_pooling)
        logger.info(f"Fold {k + 1} of {len(folds)}: training on {len(train_units):,} rows, scoring {len(held_units):,}")
        train_output = trainer.train()
        trainer.use_metrics(held_metrics)  # sees the predictions in the held-out rows' order
        scored = trainer.predict(held_data, metric_key_prefix="eval")
        results.append({"fold": k, "train_rows": len(train_units), "held_out_rows": sorted(map(int, held_units)),
                        **facts, "train_loss": train_output.training_loss,
                        "train_runtime": train_output.metrics["train_runtime"],
                        **{name.removeprefix("eval_"): value for name, value in scored.metrics.items()}})
        logger.info(f"Fold {k + 1}: " + ", ".join(f"{m} {v:.4f}" for m, v in scored.metrics.items()
                                                 if m.removeprefix("eval_") in ("accuracy", "f1_macro", "f1", "loss")))
        del trainer, train_output, scored, model
        gc.collect()  # one fold's model and optimizer at a time
    facts_keys = ("fold", "held_out_rows", "held_out_label_counts", "held_out_entities")
    mean, std = summarize([{k: v for k, v in r.items() if k not in facts_keys} for r in results])
    summary = {"cv_folds": len(folds), "seed": training_args.seed, "stratified": stratified,
               "checkpoint_selection": "validation set" if select_on_validation else "none (the last step of each fold)",
               "std": "sample standard deviation (ddof=1) over the folds", "mean": mean, "std_dev": std,
               "folds": results}
    return summary
