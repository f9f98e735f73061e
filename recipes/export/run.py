"""Export a classification recipe's output folder to ONNX (and int8), and measure how far each export agrees.

    python recipes/export/run.py --model_dir out/sst2 --output_dir out/sst2-onnx --quantize \
        --data_dir ../shared/data --benchmark sst2
    python recipes/export/run.py --model_dir out/mine --output_dir out/mine-onnx --validation_file dev.csv

Writes model.onnx (float32), with --quantize model_int8.onnx (dynamic int8), the config and tokenizer,
and export_report.json: on the validation texts (or test, if there is no validation split), each
export's share of predictions identical to the PyTorch model's, its largest logit difference, and
its accuracy where labels are known. recipes/export/predict.py predicts with the folder.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common.config.arguments import TextDataArguments
from common.config.parsing import parse_args
from common.config.process import log_ours_at_info, run_main
from common.data.labels import encode_labels
from common.data.text import load_text_data
from common.models.onnx_export import (FP32_FILE, INT8_FILE, OnnxClassifier, export_onnx, input_names, label_names,
                                       length_sorted_batches, load_classifier, quantize_int8)
from common.tokens.tokenization import max_input_length
from common.training.output_dir import RunFolder

logger = logging.getLogger(__name__)
CONFIGS = Path(__file__).parent / "configs"
BENCHMARK_CONFIG = None  # the data to compare on is always named on the command line
FP32_AGREEMENT_GOAL = 0.995  # below this the float32 export is not the same model: said loudly
REPORT_FILE = "export_report.json"


@dataclass
class ExportArguments:
    """The trained folder to export, where the export goes, and whether to quantize it."""

    model_dir: str = field(metadata={"help": "An output folder of a classification recipe."})
    output_dir: str = field(metadata={"help": "Where the export goes (an earlier export there is replaced only "
                                              "once this one is complete, with --overwrite_output_dir)."})
    quantize: bool = field(default=False, metadata={"help": "Also write model_int8.onnx (dynamic int8)."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace an earlier export in --output_dir."})
    batch_size: int = field(default=64, metadata={"help": "Texts per batch when the exports are compared."})


ARGUMENTS = (ExportArguments, TextDataArguments)


def pytorch_logits(model, tokenizer, texts: list[str], batch_size: int, max_length: int,
                   pairs: list[str] | None = None) -> np.ndarray:
    """The float32 PyTorch model's logits for texts (or text pairs), batched and ordered as OnnxClassifier does."""
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for rows, batch in length_sorted_batches(tokenizer, texts, input_names(model, tokenizer), batch_size,
                                                 max_length, "pt", pairs):
            out[rows] = model(**batch).logits.float().numpy()
    return out


def compare(logits: np.ndarray, reference: np.ndarray, gold: np.ndarray | None) -> dict:
    """How far one model's logits agree with the reference's: identical predictions, largest difference, accuracy."""
    result = {"agreement": round(float((logits.argmax(-1) == reference.argmax(-1)).mean()), 6),
              "max_abs_logit_difference": round(float(np.abs(logits - reference).max()), 6)}
    if gold is not None:
        result["accuracy"] = round(float((logits.argmax(-1) == gold).mean()), 6)
    return result


def main(argv=None):
    """Load the model and the texts, export (and quantize), compare every export with PyTorch, write the report."""
    export_args, data_args, _ = parse_args(ARGUMENTS, argv, default_config=CONFIGS / "default.yaml")
    log_ours_at_info()
    # The output folder's rules of a training run: an earlier export is replaced only once this one is written.
    with RunFolder(export_args.output_dir, trains=True, overwrite=export_args.overwrite_output_dir) as run:
        model, tokenizer = load_classifier(export_args.model_dir)
        labels = label_names(model.config, f"--model_dir {export_args.model_dir}")
        raw = load_text_data(data_args, seed=0)
        split = "validation" if "validation" in raw.splits else "test"
        frame = raw.splits[split].frame
        texts = frame[raw.text_column].tolist()
        pairs = frame[raw.text_pair_column].tolist() if raw.text_pair_column else None  # --text_pair_column
        gold = None
        if raw.label_column in frame:
            encode_labels(raw, labels)
            gold = np.array(raw.splits[split].frame["labels"].tolist())
        max_length = max_input_length(tokenizer, model.config, data_args.max_seq_length)

        run.stage()
        written = run.path
        files = [export_onnx(model, tokenizer, written)]
        if export_args.quantize:
            files.append(quantize_int8(files[0]))

        reference = pytorch_logits(model, tokenizer, texts, export_args.batch_size, max_length, pairs)
        report = {"model_dir": export_args.model_dir, "compared_on": f"{split}: {raw.splits[split].source}",
                  "rows": len(texts), "max_length": max_length, "reference": "the PyTorch model in float32",
                  "pytorch": {"accuracy": compare(reference, reference, gold).get("accuracy")}, "exports": {}}
        for path in files:
            onnx = OnnxClassifier(written, path.name)
            result = compare(onnx.logits(texts, export_args.batch_size, max_length, pairs), reference, gold)
            report["exports"][path.name] = {**result, "megabytes": round(path.stat().st_size / 2**20, 1)}
            logger.info(f"{path.name}: {result['agreement']:.2%} of predictions as PyTorch's, largest logit difference "
                        f"{result['max_abs_logit_difference']:.3g}" + (f", accuracy {result['accuracy']:.4f}"
                                                                     if gold is not None else ""))
        if report["exports"][FP32_FILE]["agreement"] < FP32_AGREEMENT_GOAL:
            agreement = report["exports"][FP32_FILE]["agreement"]
            logger.warning(f"{FP32_FILE} agrees with the PyTorch model on only {agreement:.2%} "
                           f"of the {split} texts: check the export before using it")
        if INT8_FILE in report["exports"]:
            report["exports"][INT8_FILE]["quantization"] = ("dynamic int8 (onnxruntime quantize_dynamic, QInt8 "
                                                            "weights, per channel)")
        (written / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    run_main(main)
