"""Predict with an exported folder (recipes/export/run.py): onnxruntime, no PyTorch model needed.

    python recipes/export/predict.py --model_dir out/sst2-onnx --test_file new.csv --output_file predictions.csv
    python recipes/export/predict.py --model_dir out/sst2-onnx --onnx_file model_int8.onnx --test_file new.csv \
        --output_file predictions.csv

The predictions file is the recipes' own: one row per input row, in the input's order, with the text,
the gold label if the file has one, the predicted label and each label's probability.
From Python: `OnnxClassifier("out/sst2-onnx").predict(["a fine film"])` (common/models/onnx_export.py).
"""

from dataclasses import dataclass, field
from pathlib import Path

from common.config.arguments import TextDataArguments
from common.config.errors import OptionError
from common.config.parsing import parse_args
from common.config.process import log_ours_at_info, run_main
from common.data.labels import encode_labels
from common.data.text import load_text_data
from common.models.onnx_export import FP32_FILE, OnnxClassifier
from common.outputs.predictions import write_classification_predictions


@dataclass
class PredictArguments:
    """The exported folder, which of its files, and where the predictions go."""

    model_dir: str = field(metadata={"help": "A folder written by recipes/export/run.py."})
    output_file: str = field(metadata={"help": "The predictions CSV to write."})
    onnx_file: str = field(default=FP32_FILE, metadata={"help": "model.onnx, or model_int8.onnx (--quantize)."})
    batch_size: int = field(default=64, metadata={"help": "Texts per batch."})


ARGUMENTS = (PredictArguments, TextDataArguments)


def main(argv=None):
    """Read the texts, predict them with the exported model, write the predictions in input order."""
    predict_args, data_args, _ = parse_args(ARGUMENTS, argv)
    log_ours_at_info()
    if not data_args.test_file:
        raise OptionError("--test_file: name the file of texts to predict")
    classifier = OnnxClassifier(predict_args.model_dir, predict_args.onnx_file)
    raw = load_text_data(data_args, seed=0)
    if raw.label_column in raw.splits["test"].frame:
        encode_labels(raw, classifier.labels)
    frame = raw.splits["test"].frame
    pairs = frame[raw.text_pair_column].tolist() if raw.text_pair_column else None  # --text_pair_column
    logits = classifier.logits(frame[raw.text_column].tolist(), predict_args.batch_size, data_args.max_seq_length,
                               pairs)
    write_classification_predictions(predict_args.output_file, raw, "test", logits, classifier.labels)


if __name__ == "__main__":
    run_main(main)
