"""Per-group metrics (fairlearn) against pandas, explanations (captum) that add up, the counterfactual probe,
and their bad inputs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from common.evaluation.attributions import choose_examples
from common.evaluation.groups import group_metrics

LABELS = ["neg", "pos"]


def biased_predictions(n=400, seed=0):
    """Group b's predictions are flipped 40% of the time, group a's never; group c is tiny."""
    rng = np.random.default_rng(seed)
    groups = np.array(["a", "b"] * (n // 2) + ["c"])
    gold = rng.integers(0, 2, len(groups))
    predicted = gold.copy()
    flip = (groups == "b") & (rng.random(len(groups)) < 0.4)
    predicted[flip] = 1 - predicted[flip]
    return gold, predicted, groups


def test_group_metrics_equal_a_pandas_groupby_and_gaps_are_max_minus_min(caplog):
    gold, predicted, groups = biased_predictions()
    result = group_metrics(gold, predicted, groups, LABELS, seed=0, n_boot=50)
    frame = pd.DataFrame({"gold": gold, "predicted": predicted, "group": groups})
    expected = {}
    for group, rows in frame.groupby("group"):
        expected[group] = {
            "count": len(rows), "accuracy": (rows.gold == rows.predicted).mean(),
            "f1_macro": f1_score(rows.gold, rows.predicted, labels=[0, 1], average="macro", zero_division=0),
            "recall_pos": (rows.predicted[rows.gold == 1] == 1).mean() if (rows.gold == 1).any() else 0.0,
            "recall_neg": (rows.predicted[rows.gold == 0] == 0).mean() if (rows.gold == 0).any() else 0.0,
            "predicted_rate_pos": (rows.predicted == 1).mean(), "predicted_rate_neg": (rows.predicted == 0).mean()}
    for group, values in expected.items():
        for metric, value in values.items():
            assert result["groups"][group][metric] == pytest.approx(value), (group, metric)
    for metric in ("accuracy", "f1_macro", "recall_pos", "predicted_rate_pos"):
        column = [values[metric] for values in expected.values()]
        assert result["largest_gap"][metric]["value"] == pytest.approx(max(column) - min(column))
    assert result["groups"]["a"]["accuracy"] == 1.0 and result["groups"]["b"]["accuracy"] < 0.7
    low, high = result["groups"]["b"]["accuracy_ci"]
    assert low < result["groups"]["b"]["accuracy"] < high
    # two classes: demographic parity = gap of predicted-positive rates; equalized odds = the larger of the
    # gaps in true-positive and false-positive rates
    rates = frame.groupby("group").predicted.mean()
    assert result["demographic_parity_difference"] == pytest.approx(rates.max() - rates.min())
    tpr = frame[frame.gold == 1].groupby("group").predicted.mean()
    fpr = frame[frame.gold == 0].groupby("group").predicted.mean()
    assert result["equalized_odds_difference"] == pytest.approx(max(tpr.max() - tpr.min(), fpr.max() - fpr.min()))
    assert result["small_groups"] == {"c": 1} and "c (1)" in caplog.text  # warned about, not dropped


def test_three_classes_get_no_demographic_parity():
    gold = np.array([0, 1, 2] * 20)
    result = group_metrics(gold, gold, np.array(["x", "y"] * 30), ["a", "b", "c"], n_boot=10)
    assert "demographic_parity_difference" not in result and result["largest_gap"]["accuracy"]["value"] == 0


def test_examples_are_the_most_confident_right_and_wrong_of_each_class():
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7], [0.99, 0.01], [0.45, 0.55]])
    gold = np.array([0, 0, 1, 1, 1, 0])
    # class 0 right: rows 0 (0.9), 1 (0.6); class 0 wrong: 5; class 1 right: 2, 3; class 1 wrong: 4
    # each explains the prediction
    assert choose_examples(probabilities, gold, 4) == [(0, 0), (5, 1), (2, 1), (4, 0)]
    assert sorted(row for row, _ in choose_examples(probabilities, gold, 10)) == list(range(6))


def test_multi_label_examples_are_right_and_wrong_decisions_on_each_label():
    probabilities = np.array([[0.9, 0.2], [0.7, 0.6], [0.1, 0.95], [0.4, 0.3]])
    gold = np.array([[1, 0], [0, 1], [0, 1], [1, 0]])
    # label 0 right: row 0; wrong: row 1 (assigned, 0.2 from 0.5), row 3 (missed, 0.1); label 1 right: rows 2
    # (0.45 from 0.5), 1 (0.1); wrong: none (a label rightly left out is not a decision worth explaining)
    assert choose_examples(probabilities, gold, 4, multi_label=True) == [(0, 0), (1, 0), (2, 1), (3, 0)]
    assert len(choose_examples(probabilities, gold, 10, multi_label=True)) == 5


@pytest.fixture(scope="module")
def analysed_run(tmp_path_factory, tiny_bert, write_csv, sentiment_rows, recipe):
    folder = tmp_path_factory.mktemp("analysis")
    train = write_csv(folder / "train.csv", sentiment_rows(240))
    dev_rows = [(text, label, "short" if len(text) < 30 else "long") for text, label in sentiment_rows(60, seed=1)]
    dev = write_csv(folder / "dev.csv", dev_rows, header=("text", "label", "source"))
    out = folder / "out"
    recipe("sentiment").main(["--model", str(tiny_bert), "--train_file", str(train), "--validation_file", str(dev),
                              "--group_column", "source", "--explain_examples", "6", "--counterfactual_probe", "builtin",
                              "--num_train_epochs", "15", "--learning_rate", "3e-3", "--warmup_steps", "0",
                              "--per_device_train_batch_size", "16", "--output_dir", str(out), "--bf16", "False",
                              "--disable_tqdm", "True"])
    return out, dev_rows


def test_the_recipe_reports_groups_in_results_card_and_plot(analysed_run):
    out, dev_rows = analysed_run
    results = json.loads((out / "all_results.json").read_text())
    groups = results["eval_groups"]
    assert groups["column"] == "source"
    assert {g: v["count"] for g, v in groups["groups"].items()} == \
        pd.Series([row[2] for row in dev_rows]).value_counts().to_dict()
    assert (out / "groups_validation.png").stat().st_size > 5000
    card = (out / "README.md").read_text()
    assert "## Results by group (validation, `source`)" in card and "| largest gap |" in card


def test_explanations_add_up_and_point_at_the_adjective(analysed_run):
    out, _ = analysed_run
    explanations = json.loads((out / "explanations" / "explanations.json").read_text())
    assert len(explanations) == 6
    large = 0
    for e in explanations:
        assert e["words"] == e["text"].split()  # one score per word ("the film was very good . .")
        assert e["segments"] == [0] * len(e["words"]) and e["text_pair"] is None and e["predicted"] == [e["label"]]
        assert len(e["scores"]) == len(e["words"])
        difference = e["f_text"] - e["f_baseline"]
        assert abs(sum(e["scores"]) - difference) <= 0.01 * abs(difference)  # completeness, 50 steps
        large += abs(difference) > 0.5
        if e["label"] == e["true_label"]:  # on right predictions the adjective decides
            adjective = e["words"][4]
            assert max(zip(e["scores"], e["words"]))[1] == adjective, e
    # a trained model: the text moves the logit far from the baseline's (the all-pad baseline itself leans
    # negative here, so on negative texts the difference is smaller)
    assert large >= 3
    page = (out / "explanations" / "explanations.html").read_text()
    assert "<script" not in page and "http" not in page  # self-contained: opens offline
    assert all(word in page for e in explanations for word in e["words"])
    assert (out / "explanations" / "explanations.png").stat().st_size > 5000
    results = json.loads((out / "all_results.json").read_text())
    assert results["explanations"]["texts"] == 6 and results["explanations"]["max_relative_completeness_error"] < 0.01


def test_the_counterfactual_probe_scores_each_group(analysed_run):
    out, _ = analysed_run
    probe = json.loads((out / "all_results.json").read_text())["counterfactual_probe"]
    assert set(probe["groups"]) == {"female", "male"} and probe["positive_label"] == "pos"
    assert all(group["sentences"] == 72 for group in probe["groups"].values())
    means = [group["mean_positive"] for group in probe["groups"].values()]
    assert probe["largest_gap"] == pytest.approx(max(means) - min(means))
    assert probe["largest_gap_ci"][0] <= probe["largest_gap_ci"][1]
    assert "## Counterfactual probe" in (out / "README.md").read_text()


def test_explain_command_on_a_saved_model(analysed_run, repo, tmp_path):
    out, _ = analysed_run
    command = [sys.executable, "-m", "common.explain", "--model_dir", str(out), "--text", "the plot was very awful",
               "--text", "the actor was very superb", "--output_dir", str(tmp_path / "why")]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    explained = json.loads((tmp_path / "why" / "explanations.json").read_text())
    assert [e["label"] for e in explained] == ["neg", "pos"]
    assert [max(zip(e["scores"], e["words"]))[1] for e in explained] == ["awful", "superb"]
    bad = subprocess.run([sys.executable, "-m", "common.explain", "--model_dir", str(tmp_path), "--text", "x"],
                         cwd=repo, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "not a saved model folder" in bad.stderr


@pytest.mark.parametrize("flags, message", [
    (["--group_column", "topic"], "--group_column 'topic' is not a column (columns found: text, label, source)"),
    (["--explain_examples", "2", "--do_eval", "False", "--eval_strategy", "no", "--save_strategy", "no",
      "--load_best_model_at_end", "False"], "--explain_examples explains validation texts: set --do_eval"),
    (["--counterfactual_probe", "missing.yaml"], "--counterfactual_probe missing.yaml: no such file"),
])
def test_bad_analysis_options_stop_before_training(tmp_path, tiny_bert, write_csv, sentiment_rows, recipe, capsys,
                                                   flags, message):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40))
    dev = write_csv(tmp_path / "dev.csv", [(t, l, "x") for t, l in sentiment_rows(10)], header=("text", "label", "source"))
    module = recipe("sentiment")
    with pytest.raises(SystemExit) as exit_info:
        module.run_main(lambda: module.main(["--model", str(tiny_bert), "--train_file", str(train), "--validation_file",
                                             str(dev), *flags, "--output_dir", str(tmp_path / "out")]))
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_ner_refuses_explanations_by_name(tmp_path, recipe, capsys):
    module = recipe("ner")
    with pytest.raises(SystemExit) as exit_info:
        module.run_main(lambda: module.main(["--train_file", "t.txt", "--explain_examples", "3",
                                             "--output_dir", str(tmp_path / "out")]))
    assert exit_info.value.code == 2
    assert "--explain_examples belongs to AnalysisArguments" in capsys.readouterr().err


def test_more_examples_than_validation_texts_explains_them_all(analysed_run, tmp_path, write_csv, recipe, capfd):
    out, _ = analysed_run
    dev = write_csv(tmp_path / "dev.csv", [("the film was very good", "pos"), ("the plot was very dull", "neg"),
                                           ("the actor was very bad", "neg")])
    recipe("sentiment").main(["--model", str(out), "--do_train", "False", "--validation_file", str(dev),
                              "--explain_examples", "10", "--output_dir", str(tmp_path / "eval"), "--bf16", "False"])
    assert "--explain_examples 10: the validation set has 3 texts; explaining all of them" in capfd.readouterr().err
    explained = json.loads((tmp_path / "eval" / "explanations" / "explanations.json").read_text())
    assert sorted(e["text"] for e in explained) == sorted(["the film was very good", "the plot was very dull",
                                                          "the actor was very bad"])


def test_text_pairs_are_explained_word_by_word_in_both_texts(tmp_path, tiny_bert, write_csv, sentiment_rows, recipe):
    # the label is decided by the second text's adjective; the first text is the same filler in every row
    rows = [("about the film :", text, label) for text, label in sentiment_rows(240)]
    train = write_csv(tmp_path / "train.csv", rows, header=("question", "answer", "label"))
    dev = write_csv(tmp_path / "dev.csv", [("about the film :", t, l) for t, l in sentiment_rows(40, seed=1)],
                    header=("question", "answer", "label"))
    out = tmp_path / "out"
    recipe("text_classification").main([
        "--model", str(tiny_bert), "--train_file", str(train), "--validation_file", str(dev), "--text_column",
        "question", "--text_pair_column", "answer", "--explain_examples", "4", "--num_train_epochs", "15",
        "--learning_rate", "3e-3", "--warmup_steps", "0", "--per_device_train_batch_size", "16",
        "--output_dir", str(out), "--bf16", "False", "--disable_tqdm", "True"])
    explanations = json.loads((out / "explanations" / "explanations.json").read_text())
    assert len(explanations) == 4
    for e in explanations:
        first, second = e["text"].split(), e["text_pair"].split()
        assert e["words"] == first + second and e["segments"] == [0] * len(first) + [1] * len(second)
        assert [e["text_pair"][a:b] for (a, b), s in zip(e["spans"], e["segments"]) if s == 1] == second
        difference = e["f_text"] - e["f_baseline"]
        assert abs(sum(e["scores"]) - difference) <= 0.01 * abs(difference) + 1e-6
        if e["label"] == e["true_label"]:
            assert max(zip(e["scores"], e["words"]))[1] == second[4]  # the adjective of the second text
    page = (out / "explanations" / "explanations.html").read_text()
    assert page.count('<div class="text pair">') == 4 and ">about</span>" in page and ">film</span>" in page
    done = subprocess.run([sys.executable, "-m", "common.explain", "--model_dir", str(out), "--text",
                           "about the film :", "--text_pair", "the plot was very awful", "--output_dir",
                           str(tmp_path / "why")], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    [explained] = json.loads((tmp_path / "why" / "explanations.json").read_text())
    assert explained["label"] == "neg" and max(zip(explained["scores"], explained["words"]))[1] == "awful"


def test_multi_label_explains_each_label_it_assigns(tmp_path, tiny_bert, write_csv, recipe, topic_rows):
    keywords = {"sports": ["game", "match"], "tech": ["tech", "stock"]}
    rows = topic_rows(keywords, 300)
    train, dev = write_csv(tmp_path / "train.csv", rows[:240]), write_csv(tmp_path / "dev.csv", rows[240:])
    out = tmp_path / "out"
    recipe("text_classification").main([
        "--model", str(tiny_bert), "--train_file", str(train), "--validation_file", str(dev), "--multi_label",
        "--label_separator", ",", "--explain_examples", "4", "--eval_strategy", "no", "--save_strategy", "no",
        "--load_best_model_at_end", "False", "--num_train_epochs", "30", "--learning_rate", "1e-3", "--warmup_steps", "0",
        "--per_device_train_batch_size", "16", "--output_dir", str(out), "--bf16", "False", "--disable_tqdm", "True"])
    explanations = json.loads((out / "explanations" / "explanations.json").read_text())
    results = json.loads((out / "all_results.json").read_text())["explanations"]
    assert [e["label"] for e in explanations] == results["labels_explained"]
    assert len(explanations) == 4 and {e["label"] for e in explanations} == {"sports", "tech"}
    for e in explanations:
        assert e["multi_label"] and e["probabilities"][e["label"]] == pytest.approx(1 / (1 + np.exp(-e["f_text"])))
        difference = e["f_text"] - e["f_baseline"]
        assert abs(sum(e["scores"]) - difference) <= 0.01 * abs(difference) + 1e-6
        if e["label"] in e["predicted"] and e["label"] in e["true_label"].split(", "):  # rightly assigned
            assert max(zip(e["scores"], e["words"]))[1] in keywords[e["label"]]
    command = [sys.executable, "-m", "common.explain", "--model_dir", str(out), "--text", "the match is it stock",
               "--output_dir", str(tmp_path / "why")]
    done = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    explained = json.loads((tmp_path / "why" / "explanations.json").read_text())
    assert sorted(e["label"] for e in explained) == ["sports", "tech"]  # both assigned, each explained
    assert {e["label"]: max(zip(e["scores"], e["words"]))[1] for e in explained} == {"sports": "match", "tech": "stock"}
