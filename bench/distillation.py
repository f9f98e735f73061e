"""Computing less: a teacher, a student distilled from it, the same student without distillation, and the
student's ONNX and int8 exports, each with its SST-2 dev accuracy and prediction speed.

    python bench/distillation.py --model <MiniLM folder> [--data_dir ../shared/data] [--train_rows N]
                                 [--student_layers 0,2,4] [--repeat 4] [--rounds 3] [--work DIR]

1. Train, each a sentiment recipe run in its own process with configs/sst2.yaml's settings (1 epoch):
   the teacher from --model; the student cut from the teacher (--student_layers) and distilled
   (--teacher_model, T 2, alpha 0.5); the same cut student on the labels alone (same steps).
2. Export the distilled student with recipes/export/run.py --quantize (its agreement report).
3. In this process, in interleaved rounds: the dev sentences (repeated --repeat times) predicted by
   `pipeline("text-classification", batch_size=64)` on the teacher (its fp32 default), by each PyTorch
   model in length-sorted batches of 64 (bf16 where the CPU runs it natively, as the recipes predict),
   and by the two exports in onnxruntime. Texts/s include tokenization; the ratio is against the
   pipeline, within each round (median and every round's).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`

from bench.harness import DATA_DIR, REPO, interleaved_rounds, median_of, print_table, ratio_cell, run_recipe  # noqa: E402

MAX_LENGTH = 128  # configs/sst2.yaml's


def train_models(model: str, data_dir: str, train_rows: int | None, layers: str, work: Path) -> dict:
    """Teacher, distilled student, label-only student: {name: (folder, results, wall seconds)}."""
    rows = ["--max_train_samples", str(train_rows)] if train_rows else []
    quiet = ["--explain_examples", "0", "--counterfactual_probe", "", "--report_to", "none"]
    made = {}
    for name, model_flags, extra in (
            ("teacher", ["--model", model], []),
            ("distilled student", ["--model", str(work / "teacher")], ["--teacher_model", str(work / "teacher"),
                                                                       "--student_layers", layers]),
            ("student without distillation", ["--model", str(work / "teacher")], ["--student_layers", layers])):
        folder = work / name.replace(" ", "_")
        results, seconds, _ = run_recipe(folder, model_flags, data_dir, *rows, *quiet, *extra,
                                         "--overwrite_output_dir", "True")
        made[name] = (folder, results, seconds)
        print(f"bench: {name} trained in {seconds:.0f} s, dev accuracy {results['eval_accuracy']:.4f}",
              file=sys.stderr)
    return made


def export_student(folder: Path, data_dir: str, work: Path) -> tuple[Path, dict]:
    """recipes/export/run.py --quantize on the student, compared on SST-2 dev: the folder and its report."""
    out = work / "student_onnx"
    command = [sys.executable, str(REPO / "recipes/export/run.py"), "--model_dir", str(folder), "--output_dir",
               str(out), "--quantize", "True", "--overwrite_output_dir", "True", "--data_dir", data_dir,
               "--benchmark", "sst2", "--max_seq_length", str(MAX_LENGTH)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    return out, json.loads((out / "export_report.json").read_text())


def predictors(made: dict, onnx_folder: Path):
    """{name: predict(texts) -> label ids}, and each PyTorch model's fp32 predictions function for agreement."""
    import torch
    from transformers import pipeline

    from common.config.hardware import bf16_supported
    from common.models.onnx_export import FP32_FILE, INT8_FILE, OnnxClassifier, load_classifier
    from common.tokens.tokenization import max_input_length
    from recipes.export.run import pytorch_logits

    bf16 = bf16_supported()
    teacher_dir = made["teacher"][0]
    classify = pipeline("text-classification", model=str(teacher_dir), device="cpu")
    label2id = classify.model.config.label2id
    pipeline_length = max_input_length(classify.tokenizer, classify.model.config, MAX_LENGTH)

    def with_pipeline(texts):
        return [label2id[r["label"]] for r in classify(texts, batch_size=64, truncation=True,
                                                         max_length=pipeline_length)]

    def pytorch(folder, half: bool):
        model, tokenizer = load_classifier(str(folder))
        max_length = max_input_length(tokenizer, model.config, MAX_LENGTH)

        def predict(texts):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=half):
                return pytorch_logits(model, tokenizer, texts, 64, max_length).argmax(-1).tolist()
        return predict

    def onnx(file):
        classifier = OnnxClassifier(onnx_folder, file)
        return lambda texts: classifier.logits(texts, 64, MAX_LENGTH).argmax(-1).tolist()

    precision = "bf16" if bf16 else "fp32"
    named = {"pipeline(batch_size=64), teacher, fp32": with_pipeline,
             f"teacher, PyTorch {precision}": pytorch(teacher_dir, bf16),
             f"distilled student, PyTorch {precision}": pytorch(made["distilled student"][0], bf16),
             f"student without distillation, PyTorch {precision}": pytorch(made["student without distillation"][0], bf16),
             "distilled student, ONNX fp32": onnx(FP32_FILE),
             "distilled student, ONNX int8": onnx(INT8_FILE)}
    fp32 = {f"teacher, PyTorch {precision}": pytorch(teacher_dir, False),
            f"distilled student, PyTorch {precision}": pytorch(made["distilled student"][0], False),
            f"student without distillation, PyTorch {precision}": pytorch(made["student without distillation"][0], False)}
    return named, fp32


def main():
    """Train, export, then time every predictor in interleaved rounds; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--train_rows", type=int, default=None, help="Train on the first N sentences (default: all).")
    parser.add_argument("--student_layers", default="0,2,4")
    parser.add_argument("--repeat", type=int, default=4, help="Predict the dev sentences this many times per round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", default=None, help="Folder for the runs' outputs (default: a new temporary one).")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-distillation-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["HF_HUB_OFFLINE"] = "1"

    made = train_models(args.model, args.data_dir, args.train_rows, args.student_layers, work)
    onnx_folder, report = export_student(made["distilled student"][0], args.data_dir, work)

    import numpy as np
    from transformers import AutoConfig

    from common.data.benchmarks import load_sst2

    dev = load_sst2(Path(args.data_dir) / "sst2").splits["validation"].frame
    teacher_config = AutoConfig.from_pretrained(made["teacher"][0])
    texts, gold = dev["text"].tolist(), dev["label"].map(teacher_config.label2id).to_numpy()
    named, fp32 = predictors(made, onnx_folder)
    labels_of = {name: np.array(predict(texts)) for name, predict in named.items()}  # also the warm-up
    reference = {name: np.array(predict(texts)) for name, predict in fp32.items()}
    batch = texts * args.repeat

    def measure(name):
        start = time.perf_counter()
        named[name](batch)
        return {"texts/s": len(batch) / (time.perf_counter() - start)}

    rounds = interleaved_rounds(list(named), measure, args.rounds)
    pipeline_name = next(iter(named))
    rows = []
    for name, predicted in labels_of.items():
        if name in reference:
            agreement = f"{(predicted == reference[name]).mean():.2%} (fp32 PyTorch)"
        elif "ONNX" in name:
            export = report["exports"]["model_int8.onnx" if "int8" in name else "model.onnx"]
            agreement = f"{export['agreement']:.2%} (the PyTorch student; largest logit difference " \
                        f"{export['max_abs_logit_difference']:.3g})"
        else:
            agreement = "(reference)"
        trained = next((seconds for key, (_, _, seconds) in made.items()
                        if name.startswith(key + ",") and "PyTorch" in name), None)
        layers = len(args.student_layers.split(",")) if "student" in name else teacher_config.num_hidden_layers
        rows.append((name, layers, f"{(predicted == gold).mean():.4f}", agreement,
                     f"{median_of(rounds, name, 'texts/s'):.0f}",
                     ratio_cell(rounds, name, pipeline_name, "texts/s"), f"{trained:.0f}" if trained else ""))
    print(f"SST-2 dev ({len(texts)} sentences, x{args.repeat} per round, {args.rounds} rounds); trained on "
          f"{made['teacher'][1]['sizes']['train']:,} sentences, 1 epoch; student layers {args.student_layers}")
    print_table(["model", "layers", "dev accuracy", "agreement with its source", "texts/s", "vs pipeline", "train s"],
                rows)


if __name__ == "__main__":
    main()
