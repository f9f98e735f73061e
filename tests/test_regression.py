"""A score to predict (regression) and sentence pairs in the text classification recipe, the task metrics
(Matthews correlation, Pearson, Spearman), and the GLUE benchmark loaders."""

import json
import random

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import matthews_corrcoef
from transformers import pipeline

from common.config.process import run_main

FLAGS = ["--per_device_train_batch_size", "16", "--warmup_steps", "0", "--logging_steps", "10", "--bf16", "False",
         "--disable_tqdm", "True", "--metric_for_best_model", "pearson_spearman_mean"]
GOOD = ["good", "great", "fine", "superb"]
OTHER = ["the", "a", "movie", "plot", "actor", "film"]


def scored_pairs(n: int, seed: int) -> list[tuple[str, str, str]]:
    """(text, pair, score): the score is 1.25 per word of GOOD across both texts, so 0 to 5 with fractions."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(GOOD) if rng.random() < 0.5 else rng.choice(OTHER) for _ in range(4)]
        rows.append((" ".join(words[:2]), " ".join(words[2:]), f"{1.25 * sum(w in GOOD for w in words):.2f}"))
    return rows


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory, tiny_bert, write_csv, recipe):
    folder = tmp_path_factory.mktemp("scores")
    write_csv(folder / "train.csv", scored_pairs(480, 0), header=("first", "second", "score"))
    test_rows = scored_pairs(60, 1)
    write_csv(folder / "test.csv", test_rows, header=("first", "second", "score"))
    out = folder / "out"
    recipe("text_classification").main([
        "--model", str(tiny_bert), "--train_file", str(folder / "train.csv"), "--test_file", str(folder / "test.csv"),
        "--text_column", "first", "--text_pair_column", "second", "--label_column", "score", "--do_predict",
        "--validation_split", "0.15", "--output_dir", str(out), "--num_train_epochs", "12", "--learning_rate", "2e-3",
        *FLAGS])
    return out, test_rows


def test_a_float_label_trains_a_regression_head_that_learns_the_score(scored_run):
    out, test_rows = scored_run
    results = json.loads((out / "all_results.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "regression" and len(config["id2label"]) == 1
    assert config["id2label"] == {"0": "score"} and results["labels"] == ["score"]
    # a linear score of the words: a constant guess has no correlation, and its MSE is the variance (about 1.6)
    assert results["test_pearson"] >= 0.9 and results["test_spearman"] >= 0.85 and results["test_mse"] < 0.5
    assert results["test_pearson_spearman_mean"] == pytest.approx(
        (results["test_pearson"] + results["test_spearman"]) / 2)
    predictions = pd.read_csv(out / "predictions.csv")
    assert predictions.columns.tolist() == ["first", "second", "label", "predicted"]
    assert predictions["first"].tolist() == [row[0] for row in test_rows]  # the test file's order
    assert predictions["label"].tolist() == [float(row[2]) for row in test_rows]
    assert pearsonr(predictions["predicted"], predictions["label"])[0] == pytest.approx(results["test_pearson"],
                                                                                        abs=1e-4)
    assert (out / "predicted_scores.png").is_file() and not (out / "confusion_matrix.png").exists()
    card = (out / "README.md").read_text()
    assert "| split | pearson_spearman_mean | pearson | spearman | mse |" in card
    assert 'function_to_apply="none"' in card
    # pipeline() gives the score itself (no sigmoid), the number the recipe predicted
    scored = pipeline("text-classification", model=str(out))({"text": test_rows[0][0], "text_pair": test_rows[0][1]})
    assert scored["label"] == "score"
    assert scored["score"] == pytest.approx(predictions["predicted"][0], abs=1e-3)


def test_cross_validation_of_a_regression_folds_unstratified(tmp_path, tiny_bert, write_csv, recipe):
    write_csv(tmp_path / "train.csv", scored_pairs(90, 2), header=("text", "pair", "label"))
    out = tmp_path / "out"
    recipe("text_classification").main([
        "--model", str(tiny_bert), "--train_file", str(tmp_path / "train.csv"), "--text_pair_column", "pair",
        "--cv_folds", "3", "--validation_split", "0.1", "--output_dir", str(out), "--max_steps", "2", *FLAGS])
    folds = json.loads((out / "cv_results.json").read_text())
    assert len(folds["folds"]) == 3 and "pearson" in folds["mean"] and "mse" in folds["mean"]


@pytest.mark.parametrize("extra, message", [
    (["--multi_label", "--label_separator", ","], "is a number with a fraction, a score to predict"),
    (["--class_weights", "balanced"], "--class_weights is for classes, and the label 'label' here is a score"),
    (["--explain_examples", "2"], "--explain_examples is for classes"),
    (["--teacher_model", "a-teacher"], "--teacher_model is for classes"),
    (["--metric_for_best_model", "accuracy"], "--metric_for_best_model accuracy: evaluation reports no such metric "
                                              "(it reports loss, pearson, spearman, pearson_spearman_mean, mse)"),
    (["--text_pair_column", "second"], "no column 'second'"),
])
def test_options_that_do_not_fit_a_score_stop_in_one_line(tmp_path, tiny_bert, write_csv, recipe, capsys,
                                                           extra, message):
    write_csv(tmp_path / "train.csv", [(text, score) for text, _, score in scored_pairs(40, 3)])
    flags = [f for f in FLAGS if f != "pearson_spearman_mean" and f != "--metric_for_best_model"]
    argv = ["--model", str(tiny_bert), "--train_file", str(tmp_path / "train.csv"), "--output_dir",
            str(tmp_path / "out"), "--max_steps", "1", *flags,
            *(["--metric_for_best_model", "pearson"] if "--metric_for_best_model" not in extra else []), *extra]
    with pytest.raises(SystemExit) as stopped:
        run_main(lambda: recipe("text_classification").main(argv))
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_a_regression_label_that_is_not_a_number_names_its_line(tmp_path, tiny_bert, write_csv, recipe, capsys):
    rows = [(text, score) for text, _, score in scored_pairs(30, 4)]
    rows[6] = (rows[6][0], "high")
    write_csv(tmp_path / "train.csv", rows)
    argv = ["--model", str(tiny_bert), "--train_file", str(tmp_path / "train.csv"), "--regression", "True",
            "--output_dir", str(tmp_path / "out"), "--max_steps", "1", *FLAGS]
    with pytest.raises(SystemExit) as stopped:
        run_main(lambda: recipe("text_classification").main(argv))
    assert stopped.value.code == 2
    assert f"{tmp_path / 'train.csv'}, line 8: label 'high' is not a number" in capsys.readouterr().err


def test_whole_number_labels_stay_classes_and_regression_false_keeps_fractions_as_classes(tmp_path):
    from common.data.labels import build_label_list, decide_regression
    from common.data.tables import Split, TextData

    def data(values):
        frame = pd.DataFrame({"text": ["x"] * len(values), "label": values, "_line": range(2, len(values) + 2)})
        return TextData({"train": Split(frame, "train.csv")}, "text", "label")

    classes = data(["0", "1", "2", "1"])
    decide_regression(classes, None)
    assert not classes.regression and build_label_list(classes) == ["0", "1", "2"]
    scores = data(["0.5", "1", "2.25", "1"])
    decide_regression(scores, None)
    assert scores.regression and build_label_list(scores) == ["label"]
    asked_not = data(["0.5", "1", "2.25", "1"])
    decide_regression(asked_not, False)
    assert not asked_not.regression and build_label_list(asked_not) == ["0.5", "1", "2.25"]


def test_the_metric_modules_agree_with_scipy_and_sklearn():
    from common.evaluation.metrics import load_metric

    rng = np.random.default_rng(0)
    gold, noise = rng.normal(size=200), rng.normal(size=200)
    predicted = gold + 0.8 * noise
    scores = load_metric("regression_scores").compute(predictions=predicted, references=gold)
    assert scores["pearson"] == pytest.approx(pearsonr(predicted, gold)[0])
    assert scores["spearman"] == pytest.approx(spearmanr(predicted, gold)[0])
    assert scores["mse"] == pytest.approx(np.mean((predicted - gold) ** 2))
    assert scores["pearson_spearman_mean"] == pytest.approx((scores["pearson"] + scores["spearman"]) / 2)
    constant = load_metric("regression_scores").compute(predictions=[2.0] * 5, references=[1, 2, 3, 4, 5])
    assert constant["pearson"] == 0.0 and constant["spearman"] == 0.0 and constant["mse"] == pytest.approx(3.0)

    classes, guesses = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    guesses[:200] = classes[:200]
    scores = load_metric("classification_scores").compute(predictions=guesses, references=classes, num_labels=2)
    assert scores["matthews_correlation"] == pytest.approx(matthews_corrcoef(classes, guesses))
    assert 0.3 < scores["matthews_correlation"] < 0.9
    assert scores["f1_per_class"][1] == pytest.approx(
        2 * ((guesses == 1) & (classes == 1)).sum() / ((guesses == 1).sum() + (classes == 1).sum()))


@pytest.mark.needs_data("cola", "mrpc", "rte", "stsb")
@pytest.mark.parametrize("benchmark, sizes, text, pair, labels", [
    ("cola", (8551, 1043), "sentence", None, ["unacceptable", "acceptable"]),
    ("mrpc", (3668, 408), "sentence1", "sentence2", ["not_equivalent", "equivalent"]),
    ("rte", (2490, 277), "sentence1", "sentence2", ["entailment", "not_entailment"]),
    ("stsb", (5749, 1500), "sentence1", "sentence2", None),
])
def test_the_glue_loaders_read_every_row_with_its_pair_and_labels(shared_data, benchmark, sizes, text, pair, labels):
    from common.data.benchmarks import BENCHMARKS

    raw = BENCHMARKS[benchmark](shared_data / benchmark)
    assert (len(raw.splits["train"].frame), len(raw.splits["validation"].frame)) == sizes
    assert (raw.text_column, raw.text_pair_column, raw.label_names) == (text, pair, labels)
    assert raw.regression == (benchmark == "stsb")
    first = raw.splits["train"].frame.iloc[0]
    if benchmark == "mrpc":  # the header's byte-order mark is not part of the first column's name
        assert first["label"] == "equivalent" and first["sentence1"].startswith("Amrozi accused his brother")
    if benchmark == "stsb":
        assert (first["sentence1"], first["score"]) == ("A plane is taking off.", "5.000")


def test_each_glue_config_names_a_metric_its_task_reports(repo):
    import yaml

    expected = {"cola": "matthews_correlation", "mrpc": "f1_equivalent", "rte": "accuracy",
                "stsb": "pearson_spearman_mean"}
    for benchmark, metric in expected.items():
        config = yaml.safe_load((repo / "recipes/text_classification/configs" / f"{benchmark}.yaml").read_text())
        assert (config["benchmark"], config["metric_for_best_model"]) == (benchmark, metric)


def test_the_onnx_export_refuses_a_regression_model_in_one_line(scored_run):
    from common.config.errors import OptionError
    from common.models.onnx_export import load_classifier

    out, _ = scored_run
    with pytest.raises(OptionError, match=r"a regression model \(one predicted score\); the export takes classifiers"):
        load_classifier(str(out))


def test_the_results_table_sets_each_glue_task_beside_its_published_figure_on_its_metric(tmp_path):
    from common.outputs.results_table import rows

    for task, metric, score in (("stsb", "pearson_spearman_mean", 0.85), ("cola", "matthews_correlation", 0.3)):
        folder = tmp_path / f"glue-{task}"
        folder.mkdir()
        (folder / "all_results.json").write_text(json.dumps({
            "main_metric": metric, f"eval_{metric}": score, "model": "minilm", "sizes": {"validation": 10},
            "data": {"train": f"/data/{task}/train.tsv", "validation": f"/data/{task}/dev.tsv"}}))
    table = {row["run"]: row for row in rows([tmp_path / "glue-stsb", tmp_path / "glue-cola"])}
    assert (table["glue-stsb"]["metric"], table["glue-stsb"]["score"]) == ("pearson_spearman_mean", 0.85)
    assert table["glue-stsb"]["published"].startswith("0.8856 (bert-base-cased")
    assert table["glue-cola"]["published"].startswith("0.5653 (bert-base-cased")


def test_mse_as_the_metric_for_the_best_model_keeps_the_lowest(tmp_path):
    from common.config.arguments import RecipeTrainingArguments

    for name in ("mse", "eval_mse"):
        assert RecipeTrainingArguments(output_dir=str(tmp_path), metric_for_best_model=name).greater_is_better is False
    assert RecipeTrainingArguments(output_dir=str(tmp_path), metric_for_best_model="pearson").greater_is_better
