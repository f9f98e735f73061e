"""Padding, length grouping, evaluation order, metrics and the tokenization cache."""

import logging

import datasets
import numpy as np
import pytest
import torch

from common.config.arguments import ModelArguments, RecipeTrainingArguments, TextDataArguments
from common.data.labels import build_label_list, encode_labels
from common.data.text import load_text_data
from common.evaluation.metrics import classification_metrics, load_metric
from common.models.heads import build_classifier
from common.models.tokenizer import load_tokenizer
from common.tokens.tokenization import tokenize_splits
from common.training.samplers import ShuffledLengthGroupedSampler, token_lengths
from common.training.stages import build_trainer
from common.training.losses import loss_divides_by_item_count
from common.training.trainer import RecipeTrainer


@pytest.fixture
def tokenized_rows(tmp_path, tiny_bert, write_csv):
    """tokenized_rows(texts, max_length=64, labels=None): labelled rows read, encoded and tokenized as a recipe does."""
    def tokenize(texts, max_length=64, labels=None):
        rows = [(t, (labels or ["a", "b"])[i % 2]) for i, t in enumerate(texts)]
        raw = load_text_data(TextDataArguments(train_file=str(write_csv(tmp_path / "t.csv", rows)), validation_split=0),
                             seed=0)
        label_list = build_label_list(raw)
        encode_labels(raw, label_list)
        tokenizer = load_tokenizer(ModelArguments(model_name_or_path=str(tiny_bert)))
        return raw, label_list, tokenizer, tokenize_splits(raw, tokenizer, max_length)["train"]

    return tokenize


def varied_texts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(["good"] * int(k)) for k in rng.integers(1, 40, size=n)]


def test_dynamic_padding_pads_to_the_longest_in_the_batch(tmp_path, tiny_bert, tokenized_rows):
    _, labels, tokenizer, dataset = tokenized_rows(["good", "very very good film", "bad"])
    assert [len(ids) for ids in dataset["input_ids"]] == [3, 6, 3]  # nothing padded at tokenization
    trainer = build_trainer(build_classifier(ModelArguments(str(tiny_bert)), labels, tokenizer),
                            RecipeTrainingArguments(output_dir=str(tmp_path / "o"), report_to="none"), tokenizer)
    batch = trainer.data_collator([dataset[i] for i in range(3)])
    assert batch["input_ids"].shape == (3, 6)
    assert batch["attention_mask"].sum(dim=1).tolist() == [3, 6, 3]


def padding_of(batches, lengths):
    return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)


def test_length_grouped_batches_need_far_less_padding(tmp_path, tiny_bert, tokenized_rows):
    _, labels, tokenizer, dataset = tokenized_rows(varied_texts(512))
    model = build_classifier(ModelArguments(str(tiny_bert)), labels, tokenizer)
    lengths = token_lengths(dataset).tolist()
    assert lengths == [len(ids) for ids in dataset["input_ids"]]

    def batches(strategy):
        args = RecipeTrainingArguments(output_dir=str(tmp_path / "o"), per_device_train_batch_size=16,
                                       train_sampling_strategy=strategy, report_to="none", seed=1)
        order = list(RecipeTrainer(model=model, args=args, train_dataset=dataset)._get_train_sampler())
        assert sorted(order) == list(range(len(dataset)))  # every row once per epoch
        return [order[i:i + 16] for i in range(0, len(order), 16)]

    grouped, shuffled = padding_of(batches("group_by_length"), lengths), padding_of(batches("random"), lengths)
    assert grouped < shuffled / 4, (grouped, shuffled)


def test_length_grouped_batches_come_in_random_order_longest_first():
    # transformers' LengthGroupedSampler runs each group of 50 batches longest to shortest (a saw-tooth)
    lengths = np.random.default_rng(0).integers(1, 200, size=3200)
    torch.manual_seed(0)
    order = list(ShuffledLengthGroupedSampler(lengths, batch_size=32))
    assert sorted(order) == list(range(3200))
    batches = [order[i:i + 32] for i in range(0, 3200, 32)]
    assert lengths[batches[0]].max() == lengths.max()
    longest = [lengths[b].max() for b in batches]
    falls = sum(a > b for a, b in zip(longest, longest[1:]))
    assert 35 < falls < 65, falls  # random order: about half of the steps go down; a saw-tooth has ~98
    assert all(lengths[b].max() - lengths[b].min() < 40 for b in batches)  # each batch still of similar lengths


def test_token_labels_in_length_grouped_batches_weigh_every_token_the_same(tmp_path, tiny_bert):
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(str(tiny_bert), num_labels=3)
    rows = [[0, 1, 2, -100], [1, -100], [2, 2, 2, 2, 2, 2], [0]]  # 11 labelled tokens in 4 rows
    dataset = datasets.Dataset.from_dict({"input_ids": [[5] * len(r) for r in rows], "labels": rows})
    args = RecipeTrainingArguments(output_dir=str(tmp_path / "o"), per_device_train_batch_size=2, report_to="none")
    trainer = RecipeTrainer(model=model, args=args, train_dataset=dataset)
    assert trainer.loss.tokens_per_step == 11 / 2  # two steps per epoch
    assert trainer.loss_is_scaled_for_ga is True  # the loss already covers a whole optimizer step
    batch = {"input_ids": torch.tensor([[5, 5, 5, 5]]), "labels": torch.tensor([[0, 1, 2, -100]])}
    model.train()
    summed = torch.nn.functional.cross_entropy(model(input_ids=batch["input_ids"]).logits[0], batch["labels"][0],
                                               ignore_index=-100, reduction="sum")
    assert trainer.compute_loss(model, batch).item() == pytest.approx(summed.item() / 5.5, rel=1e-5)
    model.eval()
    assert trainer.compute_loss(model, batch).item() == pytest.approx(summed.item() / 3, rel=1e-5)  # eval: the mean


def test_predictions_come_back_in_input_order(tmp_path, tiny_bert, tokenized_rows):
    _, labels, tokenizer, dataset = tokenized_rows(varied_texts(50, seed=2))
    model = build_classifier(ModelArguments(str(tiny_bert)), labels, tokenizer).eval()
    args = RecipeTrainingArguments(output_dir=str(tmp_path / "o"), per_device_eval_batch_size=8, report_to="none")
    seen_by_metrics = []

    def record(prediction):
        seen_by_metrics.append(prediction.label_ids.tolist())
        return classification_metrics(labels)(prediction)

    trainer = build_trainer(model, args, tokenizer, compute_metrics=record)
    sampler_order = trainer._get_eval_sampler(dataset)
    assert sampler_order != list(range(50))  # batches are length-sorted ...
    output = trainer.predict(dataset)
    trainer.evaluate(dataset)
    assert seen_by_metrics == [dataset["labels"]] * 2  # ... compute_metrics sees the input order ...
    with torch.no_grad():  # ... yet row i of the output is row i of the input
        one_by_one = np.concatenate([model(input_ids=torch.tensor([ids])).logits.numpy() for ids in dataset["input_ids"]])
    np.testing.assert_allclose(output.predictions, one_by_one, atol=1e-4)
    assert output.label_ids.tolist() == dataset["labels"]


def test_metric_values_on_hand_made_predictions():
    scores = load_metric("classification_scores").compute(
        predictions=[0, 2, 1, 0, 0, 1], references=[0, 1, 2, 0, 1, 2], num_labels=4)
    assert scores["accuracy"] == pytest.approx(2 / 6)
    # class 0: P 2/3 R 1 F1 0.8; classes 1, 2: 0; class 3 absent from both: 0, still in the macro mean
    assert scores["f1_per_class"] == pytest.approx([0.8, 0, 0, 0])
    assert scores["f1_macro"] == pytest.approx(0.2)
    assert scores["f1_micro"] == pytest.approx(2 / 6)
    assert scores["precision_macro"] == pytest.approx((2 / 3) / 4)
    assert scores["support_per_class"] == [2, 2, 2, 0]
    multi = load_metric("classification_scores", "multilabel").compute(
        predictions=[[0, 1, 1], [1, 1, 0]], references=[[0, 1, 1], [0, 1, 0]])
    assert multi["accuracy"] == 0.5  # exact match of the label set
    assert multi["f1_macro"] == pytest.approx((0 + 1 + 1) / 3)
    assert multi["precision_micro"] == pytest.approx(3 / 4)


def test_compute_metrics_names_classes():
    from transformers import EvalPrediction

    compute = classification_metrics(["neg", "pos"])
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]])
    scores = compute(EvalPrediction(predictions=logits, label_ids=np.array([0, 1, 1])))
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["recall_pos"] == 0.5 and scores["support_neg"] == 1


def test_truncation_is_counted_and_tokenization_is_cached(tmp_path, tiny_bert, caplog, tokenized_rows):
    texts = ["good"] * 5 + ["good " * 30, "bad " * 40]
    with caplog.at_level(logging.WARNING, logger="common.tokens.tokenization"):
        raw, _, tokenizer, dataset = tokenized_rows(texts, max_length=16)
    assert max(len(ids) for ids in dataset["input_ids"]) == 16
    assert "2 of 7 texts were longer than 16 tokens and were truncated" in caplog.text
    assert "lines 7, 8" in caplog.text  # file lines of the two long rows (header is line 1)
    again = tokenize_splits(raw, tokenizer, 16)["train"]
    assert again.cache_files[0]["filename"] == dataset.cache_files[0]["filename"]
    other = tokenize_splits(raw, tokenizer, 32)["train"]  # another length is another cache entry
    assert other.cache_files[0]["filename"] != dataset.cache_files[0]["filename"]


def test_early_stopping_is_wired_to_the_flag(tmp_path, tiny_bert, tokenized_rows):
    from transformers import EarlyStoppingCallback

    _, labels, tokenizer, dataset = tokenized_rows(["good", "bad"])

    def callbacks(**kw):
        args = RecipeTrainingArguments(output_dir=str(tmp_path / "o"), report_to="none", eval_strategy="epoch",
                                       save_strategy="epoch", load_best_model_at_end=True, **kw)
        model = build_classifier(ModelArguments(str(tiny_bert)), labels, tokenizer)
        trainer = build_trainer(model, args, tokenizer, train_dataset=dataset, eval_dataset=dataset)
        return [type(c) for c in trainer.callback_handler.callbacks]

    assert EarlyStoppingCallback in callbacks(early_stopping_patience=2)
    assert EarlyStoppingCallback not in callbacks()


def test_a_model_that_takes_its_own_mean_is_averaged_over_accumulation_steps(tmp_path, tiny_bert):
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(str(tiny_bert), num_labels=3)
    assert not loss_divides_by_item_count(model)  # BERT heads: CrossEntropyLoss() mean, **kwargs ignored
    args = RecipeTrainingArguments(output_dir=str(tmp_path / "o"), gradient_accumulation_steps=2, report_to="none")
    trainer = RecipeTrainer(model=model, args=args)
    assert trainer.model_accepts_loss_kwargs is False  # stock Trainer: True, from the **kwargs in forward
    batch = {"input_ids": torch.tensor([[5, 6, 7, 8]]), "labels": torch.tensor([[0, 1, 2, -100]])}
    trainer.current_gradient_accumulation_steps = 2
    model.train()
    mean = model(**batch).loss.item()
    # the training loop passes the step's labelled-token count; the model ignores it, so the loss must be halved
    step_loss = trainer.training_step(model, batch, num_items_in_batch=torch.tensor(3))
    assert step_loss.item() == pytest.approx(mean / 2, rel=1e-5)


def test_metric_names_declared_are_the_ones_reported():
    """--metric_for_best_model is checked against these names before training: they must be the real keys."""
    from transformers import EvalPrediction

    from common.evaluation.metrics import classification_metrics

    for multi_label in (False, True):
        compute = classification_metrics(["neg", "pos", "mixed"], multi_label)
        labels = np.array([[1, 0, 1], [0, 1, 0]]) if multi_label else np.array([0, 2])
        logits = np.array([[2.0, -1.0, 0.5], [-1.0, 2.0, -3.0]])
        assert sorted(compute(EvalPrediction(predictions=logits, label_ids=labels))) == sorted(compute.names)
