"""Class weights, the L1 penalty and the SGD optimiser: their values checked against hand computations."""

import datasets
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification

from common.config.arguments import RecipeTrainingArguments
from common.config.errors import OptionError
from common.config.parsing import parse_args
from common.training.losses import balanced_class_weights, parse_class_weights, weighted_loss
from common.training.trainer import RecipeTrainer

LABELS = ["neg", "pos", "mixed"]


def test_balanced_weights_follow_sklearn():
    from sklearn.utils.class_weight import compute_class_weight

    ids = [0, 0, 0, 0, 1, 1, 2]
    expected = compute_class_weight("balanced", classes=np.arange(3), y=ids)
    assert list(balanced_class_weights(ids, LABELS).values()) == pytest.approx(expected)
    # token labels: -100 (special tokens, continuation subwords) are not counted
    assert balanced_class_weights([[0, 0, -100], [0, 0, 1, 1, 2, -100]], LABELS) == \
        pytest.approx(dict(zip(LABELS, compute_class_weight("balanced", classes=np.arange(3), y=[0, 0, 0, 0, 1, 1, 2]))))
    # multi-label: negatives / positives per label (pos_weight)
    multi_hot = [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    assert balanced_class_weights(multi_hot, LABELS) == pytest.approx({"neg": 1 / 3, "pos": 3.0, "mixed": 3.0})


def test_explicit_weights_in_label_order_or_by_name():
    assert parse_class_weights("1,2.5,0.5", LABELS) == {"neg": 1.0, "pos": 2.5, "mixed": 0.5}
    assert parse_class_weights("pos=3", LABELS) == {"neg": 1.0, "pos": 3.0, "mixed": 1.0}
    assert parse_class_weights("balanced", LABELS) is None


@pytest.mark.parametrize("spec, message", [
    ("1,2", r"2 weights for 3 labels \(neg, pos, mixed\), in that order"),
    ("1,0,2", r"the weight of 'pos' is 0.0; weights must be above 0"),
    ("1,-1,2", r"the weight of 'pos' is -1.0"),
    ("happy=2", r"happy is not a label \(labels: neg, pos, mixed\)"),
    ("pos=2,1", r"give every weight as name=value, or none of them"),
    ("a,b,c", r"weights must be numbers"),
])
def test_bad_class_weights_are_option_errors(spec, message):
    with pytest.raises(OptionError, match=message):
        parse_class_weights(spec, LABELS)


def test_weighted_loss_is_the_hand_computed_weighted_cross_entropy():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [0.0, 0.0, 1.0]])
    labels = torch.tensor([0, 2, 1, 2])
    weights = torch.tensor([0.5, 2.0, 4.0])
    by_hand = sum(weights[y] * -torch.log_softmax(row, -1)[y] for row, y in zip(logits, labels)) / 4
    assert weighted_loss(logits, labels, weights).item() == pytest.approx(by_hand.item(), rel=1e-6)
    # divided by the rows, not by the batch's sum of weights (10.5): the same per row on any split of the batch
    halves = [weighted_loss(logits[i:i + 2], labels[i:i + 2], weights) for i in (0, 2)]
    assert (sum(halves) / 2).item() == pytest.approx(by_hand.item(), rel=1e-6)
    # tokens: -100 ignored; multi-label: binary cross-entropy with pos_weight
    tokens = weighted_loss(logits[None], torch.tensor([[0, -100, 1, 2]]), weights)
    assert tokens.item() == pytest.approx(((0.5 * F.cross_entropy(logits[0:1], labels[0:1])) +
                                           2.0 * F.cross_entropy(logits[2:3], labels[2:3]) +
                                           4.0 * F.cross_entropy(logits[3:4], labels[3:4])).item() / 3, rel=1e-6)
    targets = torch.tensor([[1.0, 0.0, 1.0]] * 4)
    assert weighted_loss(logits, targets, weights).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weights).item(), rel=1e-6)


@pytest.fixture
def classifier_trainer(tmp_path, tiny_bert):
    def build(**kwargs):
        model = AutoModelForSequenceClassification.from_pretrained(
            str(tiny_bert), num_labels=3, id2label=dict(enumerate(LABELS)), label2id={k: i for i, k in enumerate(LABELS)})
        rows = {"input_ids": [[2, 10 + i % 5, 11, 3] for i in range(8)], "labels": [0, 0, 0, 0, 0, 1, 1, 2]}
        args = RecipeTrainingArguments(output_dir=str(tmp_path / "o"), report_to="none", use_cpu=True,
                                       per_device_train_batch_size=4, train_sampling_strategy="random", **kwargs)
        return RecipeTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_dict(rows))

    return build


def batch():
    return {"input_ids": torch.tensor([[2, 10, 11, 3], [2, 12, 13, 3]]), "labels": torch.tensor([0, 2])}


def test_the_trainer_uses_balanced_weights_from_the_whole_training_split(classifier_trainer):
    trainer = classifier_trainer(class_weights="balanced")
    assert trainer.loss.class_weights == pytest.approx({"neg": 8 / 15, "pos": 8 / 6, "mixed": 8 / 3})
    trainer.model.train()
    logits = trainer.model(input_ids=batch()["input_ids"]).logits
    by_hand = (8 / 15 * F.cross_entropy(logits[:1], batch()["labels"][:1]) +
               8 / 3 * F.cross_entropy(logits[1:], batch()["labels"][1:])) / 2
    assert trainer.compute_loss(trainer.model, batch()).item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert trainer.loss_is_scaled_for_ga is False  # a mean over rows: Trainer still divides by the GA steps


def test_l1_penalty_value_and_gradient(classifier_trainer):
    trainer = classifier_trainer(l1_lambda=0.01)
    plain = classifier_trainer()
    plain.model.load_state_dict(trainer.model.state_dict())
    for t in (trainer, plain):
        t.model.train()
        t.current_gradient_accumulation_steps = 1
    decayed = {n: p for n, p in trainer.model.named_parameters() if "bias" not in n and "LayerNorm" not in n}
    penalty = trainer.compute_loss(trainer.model, batch()) - plain.compute_loss(plain.model, batch())
    assert penalty.item() == pytest.approx(0.01 * sum(p.abs().sum().item() for p in decayed.values()), rel=1e-5)

    trainer.compute_loss(trainer.model, batch()).backward()
    plain.compute_loss(plain.model, batch()).backward()
    plain_grads = dict(plain.model.named_parameters())
    for name, p in trainer.model.named_parameters():
        extra = p.grad - plain_grads[name].grad
        expected = 0.01 * torch.sign(p.detach()) if name in decayed else torch.zeros_like(p)
        assert torch.allclose(extra, expected, atol=1e-6), name


def test_l1_penalty_is_logged_beside_the_loss(classifier_trainer):
    trainer = classifier_trainer(l1_lambda=0.001, max_steps=2, logging_steps=1, learning_rate=1e-3)
    decayed = [p for n, p in trainer.model.named_parameters() if "bias" not in n and "LayerNorm" not in n]
    before = 0.001 * sum(p.abs().sum().item() for p in decayed)
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert "l1_penalty" in logged[0] and logged[0]["l1_penalty"] == pytest.approx(before, rel=1e-4)


def test_sgd_uses_the_momentum_given(classifier_trainer):
    trainer = classifier_trainer(optim="sgd", optim_args="momentum=0.9,nesterov=true", learning_rate=0.05)
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.SGD) or "SGD" in type(optimizer).__name__
    assert {g["momentum"] for g in optimizer.param_groups} == {0.9} and optimizer.param_groups[0]["nesterov"]
    with pytest.raises(OptionError, match=r"'momentun' is not an SGD setting"):
        parse_args((RecipeTrainingArguments,), ["--optim", "sgd", "--optim_args", "momentun=0.9"])
    with pytest.raises(OptionError, match=r"--l1_lambda -1.0 must be at least 0"):
        parse_args((RecipeTrainingArguments,), ["--l1_lambda", "-1"])


@pytest.mark.slow
def test_class_weights_and_l1_give_the_same_loss_with_one_and_two_processes(tmp_path, tiny_bert, write_csv,
                                                                            sentiment_rows, repo):
    """Same global batch (1 x 32 or 2 x 16), fp32, no dropout: the logged losses and penalties agree."""
    import json
    import os
    import subprocess
    import sys

    rows = sentiment_rows(96)
    train = write_csv(tmp_path / "train.csv", [r for r in rows if r[1] == "pos"] + [r for r in rows if r[1] == "neg"][:16])

    def run(launcher, out, batch_size):
        flags = ["recipes/sentiment/run.py", "--model", str(tiny_bert), "--train_file", str(train),
                 "--validation_split", "0", "--do_eval", "False", "--eval_strategy", "no", "--save_strategy", "no",
                 "--load_best_model_at_end", "False", "--train_sampling_strategy", "sequential", "--max_steps", "3",
                 "--logging_steps", "1", "--learning_rate", "1e-3", "--class_weights", "balanced", "--l1_lambda",
                 "1e-4", "--per_device_train_batch_size", str(batch_size), "--bf16", "False", "--disable_tqdm", "True",
                 "--output_dir", str(out)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo)}
        done = subprocess.run(launcher + flags, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        state = json.loads((out / "trainer_state.json").read_text())
        return [(e["loss"], e["l1_penalty"]) for e in state["log_history"] if "loss" in e]

    one = run([sys.executable], tmp_path / "one", 32)
    two = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541"],
              tmp_path / "two", 16)
    assert len(one) == len(two) == 3
    for (loss_1, l1_1), (loss_2, l1_2) in zip(one, two):
        assert loss_2 == pytest.approx(loss_1, rel=1e-4) and l1_2 == pytest.approx(l1_1, rel=1e-4)


def test_weights_penalty_and_optimiser_are_in_the_results_and_model_card(tmp_path, tiny_bert, write_csv,
                                                                         sentiment_rows, recipe):
    import json

    rows = sentiment_rows(40)
    train = write_csv(tmp_path / "train.csv", rows + [r for r in rows if r[1] == "pos"])  # 40 pos, 20 neg
    recipe("sentiment").main(["--model", str(tiny_bert), "--train_file", str(train), "--class_weights", "balanced",
                              "--l1_lambda", "1e-5", "--optim", "sgd", "--optim_args", "momentum=0.9",
                              "--validation_split", "0.25", "--num_train_epochs", "1", "--output_dir",
                              str(tmp_path / "out"), "--bf16", "False", "--disable_tqdm", "True"])
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert results["class_weights"] == pytest.approx({"neg": 45 / 30, "pos": 45 / 60})  # 15 neg, 30 pos in train
    assert results["l1_lambda"] == 1e-5 and results["optim"] == "sgd"
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| class_weights | neg 1.5, pos 0.75 |" in card and "| l1_lambda | 1e-05 |" in card
