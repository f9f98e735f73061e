"""ONNX export of a classifier folder, its int8 version, the agreement report, and prediction with the export."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertForTokenClassification

import common.models.onnx_export as onnx_export
from common.config.errors import OptionError
from common.models.onnx_export import OnnxClassifier, export_onnx, load_classifier
from recipes.export import predict as export_predict
from recipes.export import run as export_run
from recipes.export.run import pytorch_logits

TEXTS = ["the movie was very good", "awful", "the plot was dull and the actor was poor . . . .", "a lovely film",
         "it was not good", "superb"]


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, tiny_bert):
    """A random three-label classifier over the tiny BERT's vocabulary, saved with its tokenizer and label names."""
    folder = tmp_path_factory.mktemp("classifier")
    torch.manual_seed(0)
    config = BertConfig.from_pretrained(tiny_bert, id2label={0: "neg", 1: "neutral", 2: "pos"},
                                        label2id={"neg": 0, "neutral": 1, "pos": 2})
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    return folder


def test_the_onnx_export_gives_the_pytorch_logits(tmp_path, classifier_dir):
    model, tokenizer = load_classifier(str(classifier_dir))
    export_onnx(model, tokenizer, tmp_path)
    exported = OnnxClassifier(tmp_path).logits(TEXTS, batch_size=4)  # padded batches of mixed lengths
    reference = pytorch_logits(model, tokenizer, TEXTS, batch_size=1, max_length=64)  # each text alone, unpadded
    assert np.abs(exported - reference).max() < 1e-4
    assert OnnxClassifier(tmp_path).labels == ["neg", "neutral", "pos"]


def test_the_export_command_writes_both_models_and_their_agreement(tmp_path, classifier_dir, write_csv):
    rows = [(text, ["neg", "neutral", "pos"][i % 3]) for i, text in enumerate(TEXTS)]
    dev = write_csv(tmp_path / "dev.csv", rows)
    out = tmp_path / "onnx"
    export_run.main(["--model_dir", str(classifier_dir), "--output_dir", str(out), "--quantize",
                     "--validation_file", str(dev)])
    report = json.loads((out / "export_report.json").read_text())
    assert report["rows"] == len(TEXTS) and set(report["exports"]) == {"model.onnx", "model_int8.onnx"}
    assert report["exports"]["model.onnx"]["agreement"] == 1.0
    assert report["exports"]["model.onnx"]["max_abs_logit_difference"] < 1e-4
    assert 0 < report["exports"]["model_int8.onnx"]["max_abs_logit_difference"] < 0.5  # quantized: close, not equal
    model, tokenizer = load_classifier(str(classifier_dir))
    reference = pytorch_logits(model, tokenizer, TEXTS, 64, 64)
    gold = np.array([i % 3 for i in range(len(TEXTS))])
    assert report["pytorch"]["accuracy"] == pytest.approx((reference.argmax(-1) == gold).mean())

    # Prediction with the export: the recipes' predictions file, in the input's order, as PyTorch predicts
    new = write_csv(tmp_path / "new.csv", [(t,) for t in reversed(TEXTS)], header=("text",))
    export_predict.main(["--model_dir", str(out), "--test_file", str(new), "--output_file", str(tmp_path / "p.csv")])
    predictions = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert predictions["text"].tolist() == list(reversed(TEXTS))
    assert predictions["predicted"].tolist() == [["neg", "neutral", "pos"][i] for i in reference.argmax(-1)[::-1]]

    # An earlier export stays unless told to replace it
    with pytest.raises(OptionError, match=r"already holds files .*give --overwrite_output_dir True to replace them, or"):
        export_run.main(["--model_dir", str(classifier_dir), "--output_dir", str(out), "--validation_file", str(dev)])
    export_run.main(["--model_dir", str(classifier_dir), "--output_dir", str(out), "--validation_file", str(dev),
                     "--overwrite_output_dir", "True"])
    assert not (out / "model_int8.onnx").exists()  # this export has no int8 file: the earlier one is gone
    assert set(json.loads((out / "export_report.json").read_text())["exports"]) == {"model.onnx"}


def test_what_cannot_be_exported_is_one_line(tmp_path, classifier_dir, tiny_bert, write_csv, monkeypatch):
    dev = write_csv(tmp_path / "dev.csv", [("good", "pos")])
    run = lambda model_dir: export_run.main(["--model_dir", str(model_dir), "--output_dir", str(tmp_path / "o"),
                                             "--validation_file", str(dev)])
    with pytest.raises(OptionError, match=r"--model_dir .*nothing: not a trained model"):
        run(tmp_path / "nothing")
    tagger = tmp_path / "tagger"
    BertForTokenClassification(BertConfig.from_pretrained(tiny_bert)).save_pretrained(tagger)
    with pytest.raises(OptionError, match=r"a BertForTokenClassification model; the export takes sequence classifiers"):
        run(tagger)
    without_tokenizer = tmp_path / "weights-only"  # every word would be [UNK], and the export would agree on nothing
    BertForSequenceClassification.from_pretrained(classifier_dir).save_pretrained(without_tokenizer)
    with pytest.raises(OptionError, match=r"--model_dir .*weights-only: its tokenizer knows only 5 tokens \(0 besides "
                                          r"special tokens\): the folder has no tokenizer files .*came from$"):
        run(without_tokenizer)

    def refuse(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::weird\nmore detail")

    monkeypatch.setattr(onnx_export.torch.onnx, "export", refuse)
    with pytest.raises(OptionError, match=r"BertForSequenceClassification: the ONNX exporter does not support this "
                                          r"architecture \(RuntimeError: Unsupported operator aten::weird\)"):
        run(classifier_dir)
    assert not (tmp_path / "o" / "model.onnx").exists()


def test_predicting_needs_an_export_and_a_file(tmp_path, classifier_dir):
    with pytest.raises(OptionError, match=r"no model.onnx in it \(write it with recipes/export/run.py\)"):
        export_predict.main(["--model_dir", str(classifier_dir), "--test_file", "x.csv", "--output_file", "p.csv"])
    with pytest.raises(OptionError, match=r"--test_file: name the file of texts to predict"):
        export_predict.main(["--model_dir", str(classifier_dir), "--output_file", "p.csv"])


def test_text_pairs_are_exported_and_compared_as_pairs(tmp_path, classifier_dir, write_csv):
    firsts, seconds = TEXTS, list(reversed(TEXTS))
    model, tokenizer = load_classifier(str(classifier_dir))
    (tmp_path / "graph").mkdir()
    export_onnx(model, tokenizer, tmp_path / "graph")
    exported = OnnxClassifier(tmp_path / "graph").logits(firsts, batch_size=4, pairs=seconds)
    reference = pytorch_logits(model, tokenizer, firsts, batch_size=1, max_length=64, pairs=seconds)
    assert np.abs(exported - reference).max() < 1e-4
    assert np.abs(reference - pytorch_logits(model, tokenizer, firsts, 1, 64)).max() > 1e-5  # the pair was read
    dev = write_csv(tmp_path / "dev.csv", [(a, b, "pos") for a, b in zip(firsts, seconds)],
                    header=("text", "pair", "label"))
    export_run.main(["--model_dir", str(classifier_dir), "--output_dir", str(tmp_path / "onnx"),
                     "--validation_file", str(dev), "--text_pair_column", "pair"])
    report = json.loads((tmp_path / "onnx" / "export_report.json").read_text())
    gold = np.full(len(TEXTS), 2)
    assert report["pytorch"]["accuracy"] == pytest.approx((reference.argmax(-1) == gold).mean())
    assert report["exports"]["model.onnx"]["agreement"] == 1.0
