"""An output folder's classifier exported to ONNX, its int8 version, and prediction with either (onnxruntime).

Why not `optimum`: optimum-onnx, the package that holds its exporters now, requires transformers < 4.58,
and these recipes run transformers 5. torch's own exporter (`torch.onnx.export`, the dynamo one) writes
the graph with dynamic batch and sequence axes, and onnxruntime's `quantize_dynamic` makes the int8
version (weights int8, activations quantized on the fly), as optimum would call it.
"""

import inspect
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from common.config.errors import OptionError
from common.models.tokenizer import LOAD_ERRORS, TOKENIZER_LOAD_ERRORS, check_has_vocabulary, load_error
from common.tokens.tokenization import max_input_length

logger = logging.getLogger(__name__)

FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def load_classifier(model_dir: str):
    """The fine-tuned sequence classifier in `model_dir` (float32, eval mode) and its tokenizer; one clear
    line for a folder that is not one."""
    try:
        config = AutoConfig.from_pretrained(model_dir)
    except LOAD_ERRORS as error:
        raise OptionError(f"--model_dir {model_dir}: not a trained model ({load_error(model_dir, error)})") from None
    architectures = config.architectures or [config.model_type]
    if not any(name.endswith("ForSequenceClassification") for name in architectures):
        raise OptionError(f"--model_dir {model_dir}: a {', '.join(architectures)} model; the export takes sequence "
                          "classifiers (the output folders of the classification recipes)")
    if config.problem_type == "regression":  # its checks compare probabilities and predicted classes
        raise OptionError(f"--model_dir {model_dir}: a regression model (one predicted score); the export takes "
                          "classifiers")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (*TOKENIZER_LOAD_ERRORS, RuntimeError) as error:  # RuntimeError: weights not of its config's shapes
        raise OptionError(f"--model_dir {model_dir}: cannot load it ({load_error(model_dir, error)})") from None
    check_has_vocabulary(tokenizer, f"--model_dir {model_dir}", tokenizer_flag=False)
    label_names(model.config, f"--model_dir {model_dir}")
    return model, tokenizer


def label_names(config, where: str) -> list[str]:
    """The classifier's label names, by id; a config whose id2label lacks an id is an OptionError."""
    missing = [i for i in range(config.num_labels) if i not in (config.id2label or {})]
    if missing:
        raise OptionError(f"{where}: its config.json names no label for id {missing[0]} (id2label: "
                          f"{config.id2label}); the folder is damaged")
    return [config.id2label[i] for i in range(config.num_labels)]


def input_names(model, tokenizer) -> list[str]:
    """The inputs the graph takes: those the tokenizer makes and the model's forward accepts."""
    accepted = inspect.signature(model.forward).parameters
    return [name for name in MODEL_INPUTS if name in tokenizer.model_input_names and name in accepted]


def export_onnx(model, tokenizer, folder: Path) -> Path:
    """Write `folder`/model.onnx (float32, dynamic batch and sequence axes) beside the config and tokenizer."""
    names = input_names(model, tokenizer)
    example = {name: torch.ones(2, 8, dtype=torch.long) for name in names}
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    path = folder / FP32_FILE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracing notes
            torch.onnx.export(model, (), str(path), kwargs=example, input_names=names, output_names=["logits"],
                              dynamic_shapes={name: {0: batch, 1: sequence} for name in names}, dynamo=True,
                              verbose=False, external_data=False)
    except Exception as error:  # torch.export and the ONNX translation raise many kinds; one line names it
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise OptionError(f"{type(model).__name__}: the ONNX exporter does not support this architecture "
                          f"({type(error).__name__}: {first_line})") from None
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return path


def quantize_int8(fp32_path: Path) -> Path:
    """Write the dynamic int8 version beside the float32 export (onnxruntime's quantize_dynamic).

    A scale per output channel of each weight matrix, not one per matrix: on a 3-layer MiniLM student
    for SST-2 it kept 98.3% of the float32 predictions instead of 94.8%, at the same speed
    (docs/benchmarks.md).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = fp32_path.with_name(INT8_FILE)
    quantize_dynamic(str(fp32_path), str(path), weight_type=QuantType.QInt8, per_channel=True)
    return path


def length_sorted_batches(tokenizer, texts: list[str], names: list[str], batch_size: int, max_length: int,
                          tensors: str, pairs: list[str] | None = None):
    """(row numbers, padded batch of `names`) for the texts (with `pairs`: text pairs, cut longest first), longest
    first: the rows say where each result goes."""
    encoded = tokenizer(list(texts), list(pairs) if pairs is not None else None, truncation=True,
                        max_length=max_length)
    order = np.argsort([-len(ids) for ids in encoded["input_ids"]], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        yield rows, tokenizer.pad({name: [encoded[name][i] for i in rows] for name in names}, return_tensors=tensors)


class OnnxClassifier:
    """Prediction with an exported folder: texts in, logits out, in the texts' order."""

    def __init__(self, folder: str | Path, file: str = FP32_FILE, threads: int | None = None):
        import onnxruntime

        folder = Path(folder)
        if not (folder / file).is_file():
            raise OptionError(f"{folder}: no {file} in it (write it with recipes/export/run.py)")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        try:
            self.session = onnxruntime.InferenceSession(str(folder / file), options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's own errors (InvalidProtobuf, Fail, ...) for a damaged file
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise OptionError(f"{folder / file}: not a readable ONNX model ({first_line}); export it again") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.config = AutoConfig.from_pretrained(folder)
        except TOKENIZER_LOAD_ERRORS as error:
            raise OptionError(f"{folder}: cannot load the export's tokenizer or config ({load_error(str(folder), error)})"
                              "; export it again") from None
        check_has_vocabulary(self.tokenizer, str(folder), tokenizer_flag=False)
        lacking = [name for name in self.inputs if name not in self.tokenizer.model_input_names]
        if lacking:
            raise OptionError(f"{folder}: the graph takes {', '.join(lacking)}, which its tokenizer does not make "
                              f"(it makes {', '.join(self.tokenizer.model_input_names)}); export it again")
        self.labels = label_names(self.config, str(folder))

    def logits(self, texts: list[str], batch_size: int = 64, max_length: int | None = None,
               pairs: list[str] | None = None) -> np.ndarray:
        """The logits of every text (or text pair); batches of similar length (less padding), in input order."""
        max_length = max_input_length(self.tokenizer, self.config, max_length)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for rows, batch in length_sorted_batches(self.tokenizer, texts, self.inputs, batch_size, max_length, "np",
                                                 pairs):
            out[rows] = self.session.run(["logits"], {name: batch[name].astype(np.int64) for name in self.inputs})[0]
        return out

    def predict(self, texts: list[str], **kwargs) -> list[str]:
        """The label name of every text, in input order."""
        return [self.labels[i] for i in self.logits(texts, **kwargs).argmax(-1)]
