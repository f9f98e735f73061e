"""Long documents measured: long BBC News articles read by truncation, head+tail, or windows.

    python bench/long_text.py --model MODEL_FOLDER [--data_dir ../shared/data] [--max_seq_length 128]

Each run is the text-classification recipe with configs/bbc_news.yaml (2 epochs, seed 42, no
checkpoints or evaluation during training), in its own process, one after the other. Prints test
accuracy and macro F1, the training rows (windows count as rows), and training and prediction time
(prediction: the 334 test articles).
"""

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`

from bench.harness import DATA_DIR, print_table, run_recipe  # noqa: E402


def main():
    """Each strategy's run, one after the other; a table of their results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--max_seq_length", default="128")
    parser.add_argument("--only", default="truncate,head_tail,windows")
    parser.add_argument("--recipe_flags", default="", help="more flags for every run, e.g. '--num_train_epochs 1'")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in args.only.split(","):
            run, seconds, _ = run_recipe(Path(tmp) / strategy, ["--model", args.model], args.data_dir, "--long_text",
                                         strategy, "--max_seq_length", args.max_seq_length,
                                         *shlex.split(args.recipe_flags), recipe="text_classification",
                                         config="bbc_news")
            train = run["long_texts"]["train"]
            rows.append((f"`{strategy}`", f"{run['test_accuracy']:.4f}", f"{run['test_f1_macro']:.4f}",
                         f"{train.get('windows', train['texts']):,}", f"{run['train_runtime']:.0f} s",
                         f"{run['test_runtime']:.1f} s", f"{seconds:.0f} s"))
    print_table([f"--long_text (max_seq_length {args.max_seq_length})", "test accuracy", "test macro F1",
                 "training rows", "training", "prediction (the test articles)", "wall"], rows)


if __name__ == "__main__":
    main()
