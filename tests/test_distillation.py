"""Distillation (--teacher_model) and students cut from a teacher (--student_layers)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

import common.training.distillation as distillation
import common.training.losses as losses_module
from common.config.arguments import DistillationArguments, RecipeTrainingArguments
from common.config.errors import OptionError
from common.models.student import keep_layers
from common.training.losses import TEACHER_LOGITS, distillation_loss
from common.training.trainer import RecipeTrainer


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_the_distillation_loss_is_the_hand_computed_one(tmp_path):
    student = np.array([[2.0, -1.0, 0.5], [0.0, 0.3, -0.7]])
    teacher = np.array([[1.0, 0.0, -1.0], [-2.0, 1.5, 0.2]])
    temperature = 3.0
    p, q = softmax(teacher / temperature), softmax(student / temperature)
    by_hand = (p * (np.log(p) - np.log(q))).sum(-1).mean() * temperature ** 2
    got = distillation_loss(torch.tensor(student), torch.tensor(teacher), temperature)
    assert got.item() == pytest.approx(by_hand, rel=1e-6)

    # And in the trainer: alpha x the labels' cross-entropy + (1 - alpha) x that, on a fixed batch.
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=3,
                                                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    args = RecipeTrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    distill = DistillationArguments(teacher_model="teacher", distill_temperature=temperature, distill_alpha=0.3)
    trainer = RecipeTrainer(model, args, distillation=distill)
    inputs = {"input_ids": torch.tensor([[2, 5, 7, 3], [2, 9, 3, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
              "labels": torch.tensor([0, 2]), TEACHER_LOGITS: torch.tensor(teacher, dtype=torch.float32)}
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits.double().numpy()
    cross_entropy = -np.log(softmax(logits)[[0, 1], [0, 2]]).mean()
    p, q = softmax(teacher / temperature), softmax(logits / temperature)
    soft = (p * (np.log(p) - np.log(q))).sum(-1).mean() * temperature ** 2
    model.train()
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(inputs))
    assert loss.item() == pytest.approx(0.3 * cross_entropy + 0.7 * soft, rel=1e-5)
    model.eval()  # evaluation rows carry no teacher logits: the labels' loss alone
    with torch.no_grad():
        plain = trainer.compute_loss(model, {k: v for k, v in inputs.items() if k != TEACHER_LOGITS})
    assert plain.item() == pytest.approx(cross_entropy, rel=1e-5)


def test_a_student_cut_from_a_teacher_keeps_exactly_the_named_layers(tmp_path):
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=32, num_labels=2)
    teacher = BertForSequenceClassification(config)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = keep_layers(teacher, [0, 3])
    student.save_pretrained(tmp_path / "student")
    saved = load_file(tmp_path / "student" / "model.safetensors")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student")
    assert reloaded.config.num_hidden_layers == 2 and len(reloaded.bert.encoder.layer) == 2
    expected = {}
    for name, value in before.items():
        if ".encoder.layer." in name:
            index = int(name.split(".encoder.layer.")[1].split(".")[0])
            if index not in (0, 3):
                continue
            name = name.replace(f".encoder.layer.{index}.", f".encoder.layer.{[0, 3].index(index)}.")
        expected[name] = value
    assert set(saved) == set(expected)
    for name, value in reloaded.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_layers_out_of_range_or_out_of_order_are_refused(tmp_path, recipe, tiny_bert, write_csv, sentiment_rows):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40))
    run = recipe("sentiment").main
    flags = ["--model", str(tiny_bert), "--train_file", str(train), "--output_dir", str(tmp_path / "o")]
    with pytest.raises(OptionError, match=r"--student_layers 0,2: .* has 2 layers \(0-1\)"):
        run([*flags, "--student_layers", "0,2"])
    with pytest.raises(OptionError, match=r"--student_layers 1,0: give distinct layer numbers from 0 up, in ascending"):
        run([*flags, "--student_layers", "1,0"])
    with pytest.raises(OptionError, match=r"--student_layers a: give layer numbers separated by commas"):
        run([*flags, "--student_layers", "a"])


# ------------------------------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def sentiment_teacher(tmp_path_factory, tiny_bert, write_csv, sentiment_rows, recipe):
    """A tiny sentiment model trained by the recipe, and the training file it learned from."""
    folder = tmp_path_factory.mktemp("teacher")
    train = write_csv(folder / "train.csv", sentiment_rows(120))
    recipe("sentiment").main(run_flags(tiny_bert, train, folder / "out"))
    return folder / "out", train


def run_flags(model, train, out, *extra):
    return ["--model", str(model), "--train_file", str(train), "--validation_split", "0.25", "--output_dir", str(out),
            "--learning_rate", "3e-3", "--num_train_epochs", "6", "--per_device_train_batch_size", "16",
            "--report_to", "none", "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end",
            "False", *extra]


@pytest.mark.slow
def test_teacher_logits_are_computed_once_and_reach_every_training_step(tmp_path, monkeypatch, sentiment_teacher,
                                                                         tiny_bert, recipe):
    teacher_dir, train = sentiment_teacher
    teacher_rows, student_batches = [], []
    load_teacher = distillation.load_teacher

    def counting_teacher(path, labels):
        model = load_teacher(path, labels)
        model.register_forward_pre_hook(lambda module, args, kwargs: teacher_rows.append(len(kwargs["input_ids"])),
                                        with_kwargs=True)
        return model

    def recording_loss(student_logits, teacher_logits, temperature):
        student_batches.append((student_logits.shape, teacher_logits.shape, temperature))
        return distillation_loss(student_logits, teacher_logits, temperature)

    monkeypatch.setattr(distillation, "load_teacher", counting_teacher)
    monkeypatch.setattr(losses_module, "distillation_loss", recording_loss)
    out = tmp_path / "student"
    recipe("sentiment").main(run_flags(tiny_bert, train, out, "--teacher_model", str(teacher_dir),
                                       "--distill_temperature", "4"))
    assert sum(teacher_rows) == 90  # 120 rows less the 30 held out for validation, each once over 6 epochs
    assert len(student_batches) == 6 * 6  # 6 batches of up to 16 rows per epoch, each with its rows' teacher logits
    assert all(s == t and s[1] == 2 and temperature == 4.0 for s, t, temperature in student_batches)


@pytest.mark.slow
def test_alpha_one_trains_exactly_as_a_plain_run(tmp_path, sentiment_teacher, tiny_bert, recipe):
    teacher_dir, train = sentiment_teacher
    recipe("sentiment").main(run_flags(tiny_bert, train, tmp_path / "plain"))
    recipe("sentiment").main(run_flags(tiny_bert, train, tmp_path / "alpha1", "--teacher_model", str(teacher_dir),
                                       "--distill_alpha", "1"))
    plain = load_file(tmp_path / "plain" / "model.safetensors")
    alpha1 = load_file(tmp_path / "alpha1" / "model.safetensors")
    assert all(torch.equal(plain[name], alpha1[name]) for name in plain)
    # ... and alpha 0.5 does not: the teacher's logits really enter the loss
    recipe("sentiment").main(run_flags(tiny_bert, train, tmp_path / "half", "--teacher_model", str(teacher_dir)))
    half = load_file(tmp_path / "half" / "model.safetensors")
    assert not torch.equal(plain["classifier.weight"], half["classifier.weight"])


@pytest.mark.slow
def test_a_cut_student_distils_from_its_teacher(tmp_path, sentiment_teacher, recipe):
    teacher_dir, train = sentiment_teacher
    out = tmp_path / "student"
    recipe("sentiment").main(run_flags(teacher_dir, train, out, "--teacher_model", str(teacher_dir),
                                       "--student_layers", "1", "--eval_strategy", "epoch"))
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1
    assert json.loads((teacher_dir / "all_results.json").read_text())["eval_accuracy"] == 1.0
    assert json.loads((out / "all_results.json").read_text())["eval_accuracy"] == 1.0


@pytest.mark.parametrize("teacher, message", [
    ("empty", r"--teacher_model .*empty: not a trained model"),
    ("encoder", r"--teacher_model .*: a BertModel model, not a sequence classifier"),
    ("other_labels", r"--teacher_model .*other_labels: its labels \['bad', 'good'\] are not this run's \['neg', 'pos'\]"),
])
def test_a_teacher_that_does_not_fit_is_one_line(tmp_path, teacher, message, tiny_bert, sentiment_teacher, recipe):
    _, train = sentiment_teacher
    folder = tmp_path / teacher
    folder.mkdir()
    if teacher == "encoder":
        folder = tiny_bert
    if teacher == "other_labels":
        model = BertForSequenceClassification(BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1,
                                                         num_attention_heads=2, intermediate_size=32,
                                                         id2label={0: "bad", 1: "good"}))
        model.save_pretrained(folder)
    with pytest.raises(OptionError, match=message):
        recipe("sentiment").main(run_flags(tiny_bert, train, tmp_path / "o", "--teacher_model", str(folder)))


@pytest.mark.parametrize("flags, message", [
    (["--distill_alpha", "0.3"], r"--distill_alpha set without a teacher: add --teacher_model DIR"),
    (["--teacher_model", "t", "--distill_alpha", "1.5"], r"--distill_alpha 1.5 must be between 0 and 1"),
    (["--teacher_model", "t", "--distill_temperature", "0"], r"--distill_temperature 0.0 must be above 0"),
    (["--teacher_model", "t", "--cv_folds", "3"], r"--teacher_model distils while training: .* --cv_folds"),
    (["--teacher_model", "t", "--long_text", "windows"], r"does not combine with --long_text windows"),
])
def test_distillation_settings_are_checked_when_parsed(tmp_path, recipe, flags, message):
    with pytest.raises(OptionError, match=message):
        recipe("sentiment").main(["--train_file", "t.csv", "--validation_file", "v.csv", "--output_dir",
                                  str(tmp_path / "o"), *flags])


@pytest.mark.slow
def test_text_classification_distils_too_and_chinese_ner_refuses(tmp_path, sentiment_teacher, tiny_bert, recipe):
    teacher_dir, train = sentiment_teacher
    out = tmp_path / "student"
    recipe("text_classification").main(run_flags(tiny_bert, train, out, "--teacher_model", str(teacher_dir),
                                                 "--eval_strategy", "epoch"))
    assert json.loads((out / "all_results.json").read_text())["eval_accuracy"] == 1.0
    with pytest.raises(OptionError, match=r"--teacher_model: for classification, not --task ner"):
        recipe("chinese_ernie").main(["--task", "ner", "--train_file", "t.json", "--output_dir", str(tmp_path / "o"),
                                      "--teacher_model", str(teacher_dir)])


def test_student_layers_with_a_model_built_from_scratch_is_refused(tmp_path, recipe):
    with pytest.raises(OptionError, match=r"--student_layers keeps some layers of --model; a model built from scratch"):
        recipe("chinese_ernie").main(["--train_file", "t.csv", "--output_dir", str(tmp_path / "o"),
                                      "--scratch_model_type", "roformer", "--student_layers", "0"])
