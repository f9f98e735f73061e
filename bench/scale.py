"""Many rows: time to the first training step, steps per second after it, and peak memory, for the text
classification recipe (a first run, and a second on the same file that reads the tokenization cache) and for a
stock script (transformers' Trainer over `datasets.load_dataset("csv")` and `map(batched=True)`, dynamic padding,
length-grouped batches, bf16 where native: the reference run_glue.py's way), side by side in one run.

    python bench/scale.py --model <MiniLM folder> [--rows 100000 1000000] [--steps 20] [--work DIR]

The rows are SST-2 training sentences repeated (labels neg/pos) into a CSV of each size. Each run is its own
process; its steps are logged one by one, and the times are read from when each log line appears.
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`

from bench.harness import DATA_DIR, REPO, print_table  # noqa: E402

STOCK_SCRIPT = '''
import sys
import datasets
import torch
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                          TrainingArguments)
from common.config.hardware import bf16_supported

model_dir, train_file, steps, out = sys.argv[1:5]
tokenizer = AutoTokenizer.from_pretrained(model_dir)
raw = datasets.load_dataset("csv", data_files={"train": train_file})["train"]
labels = sorted(raw.unique("label"))
raw = raw.map(lambda b: {"labels": [labels.index(x) for x in b["label"]]}, batched=True, remove_columns=["label"])
train = raw.map(lambda b: tokenizer(b["text"], truncation=True,
                                          max_length=min(128, tokenizer.model_max_length)),
                  batched=True, remove_columns=["text"])
model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=len(labels))
args = TrainingArguments(out, max_steps=int(steps), per_device_train_batch_size=32, logging_steps=1,
                         train_sampling_strategy="group_by_length", bf16=bf16_supported(), save_strategy="no",
                         report_to="none", disable_tqdm=True, use_cpu=not torch.cuda.is_available())
Trainer(model=model, args=args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer)).train()
'''


def write_rows(path: Path, rows: int, data_dir: str) -> None:
    """`rows` SST-2 training sentences, repeated in order, as text,label with labels neg/pos."""
    sentences = []
    with open(Path(data_dir) / "sst2" / "train.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            text, label = line.rstrip("\n").rsplit("\t", 1)
            sentences.append((text.strip(), "pos" if label == "1" else "neg"))
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["text", "label"])
        for i in range(rows):
            out.writerow(sentences[i % len(sentences)])


def timed_run(command: list[str], cwd: Path) -> dict:
    """Seconds from the start to the first logged step, steps/s after it, and the peak resident memory (MB)."""
    started = time.perf_counter()
    process = subprocess.Popen(["/usr/bin/time", "-f", "peak_kb %M", *command], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    steps, lines, peak_kb = [], [], None
    for line in process.stdout:
        lines.append(line)
        if line.startswith("{'loss'") or line.startswith('{"loss"'):
            steps.append(time.perf_counter() - started)
        elif line.startswith("peak_kb "):
            peak_kb = int(line.split()[1])
    if process.wait() != 0 or not steps:
        sys.exit(f"{' '.join(command[:3])} failed:\n" + "".join(lines[-20:]))
    rate = (len(steps) - 1) / (steps[-1] - steps[0]) if len(steps) > 1 else float("nan")
    return {"first": steps[0], "rate": rate, "peak": peak_kb / 1024}


def main():
    """One table row per size and run kind."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a model folder (MiniLM-L6 for the recorded figures)")
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--work", default=None, help="a folder for the CSVs and outputs (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="scale-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "stock.py").write_text(STOCK_SCRIPT)
    rows = []
    for size in args.rows:
        data = work / f"rows-{size}.csv"
        write_rows(data, size, args.data_dir)
        recipe = [sys.executable, str(REPO / "recipes/text_classification/run.py"), "--model", args.model,
                  "--train_file", str(data), "--validation_split", "0", "--do_eval", "False", "--eval_strategy", "no",
                  "--save_strategy", "no", "--load_best_model_at_end", "False", "--max_steps", str(args.steps),
                  "--logging_steps", "1", "--per_device_train_batch_size", "32", "--max_seq_length", "128",
                  "--disable_tqdm", "True", "--report_to", "none"]
        for kind, command in [
                ("recipe, first run", [*recipe, "--output_dir", str(work / f"recipe-{size}")]),
                ("recipe, second run (tokenization cache)", [*recipe, "--output_dir", str(work / f"again-{size}")]),
                ("stock Trainer + datasets", [sys.executable, str(work / "stock.py"), args.model, str(data),
                                              str(args.steps), str(work / f"stock-{size}")])]:
            measured = timed_run(command, work)
            rows.append([f"{size:,}", kind, f"{measured['first']:.1f}", f"{measured['rate']:.2f}",
                         f"{measured['peak']:,.0f}"])
        rows.append([f"{size:,}", "recipe, streaming", "not measured: the classification recipes do not stream yet",
                     "", ""])
    print_table(["rows", "run", "s to first step", "steps/s after it", "peak RSS MB"], rows)


if __name__ == "__main__":
    main()
