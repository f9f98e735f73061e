"""Fine-tuning the real pretrained MiniLM for NER on part of CoNLL-2003."""

import json

import pytest
from transformers import pipeline

pytestmark = [pytest.mark.slow, pytest.mark.needs_data("conll2003")]


@pytest.fixture(scope="module")
def conll_run(tmp_path_factory, shared_data, recipe, minilm):
    out = tmp_path_factory.mktemp("minilm-conll")
    recipe("ner").main([
        "--model", str(minilm), "--data_dir", str(shared_data), "--output_dir", str(out),
        "--max_train_samples", "3000", "--max_eval_samples", "1000", "--num_train_epochs", "2",
        "--disable_tqdm", "True", "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "False"])
    return out


def test_minilm_learns_conll_entities(conll_run):
    results = json.loads((conll_run / "all_results.json").read_text())
    assert results["sizes"]["train"] == 3000 and results["sizes"]["validation"] == 1000
    # measured here: 0.700 with packed random batches (0.699 length-grouped, token-weighted loss); the
    # uncased MiniLM is weakest on ORG and MISC
    assert results["eval_f1"] >= 0.62, results["eval_f1"]
    assert results["eval_f1_PER"] >= 0.8


def test_pipeline_finds_a_person_and_a_place(conll_run):
    tagger = pipeline("token-classification", model=str(conll_run), aggregation_strategy="simple")
    entities = tagger("Yesterday John Smith flew from London to see his family.")
    found = {(e["entity_group"], e["word"]) for e in entities}
    assert ("PER", "john smith") in found, entities
    assert ("LOC", "london") in found, entities
