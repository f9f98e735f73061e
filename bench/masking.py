"""Which masking helps which task: a small RoFormer pretrained on zh_corpus with each masking, then fine-tuned.

    python bench/masking.py [--data_dir ../shared/data] [--steps 4000] [--maskings token,whole_word,knowledge]

For each masking, the pretraining recipe's configs/zh_corpus.yaml (2 layers, hidden 128, character
vocabulary from the corpus) runs for the same number of steps; its output is then fine-tuned by the
Chinese recipe exactly as `bash run_all.sh` fine-tunes the scratch rows (same configs, flags and seed;
`--scratch_model_type none --model <pretrained folder>`): ChnSentiCorp, CLUENER2020 with the softmax
head and with the CRF, once per --seeds seed (the fine-tuning seed; the pretraining keeps its config's).
The scratch rows themselves run too unless --skip_scratch. Each run is its own process, one after the
other; the outputs stay under --work, and a run whose folder there already holds its results is read
back instead of run again, so a stopped bench goes on where it stopped. Prints the held-out MLM loss
each pretraining reached, its time and tokens/s, and every fine-tuned score (with several seeds: their
mean, then each seed's).
"""

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`

from bench.harness import DATA_DIR, matmul_peak, print_table, run_or_read_back, seeds_cell  # noqa: E402
from common.config.hardware import bf16_supported  # noqa: E402

# name, config, flags, score key: as run_all.sh's quick profile runs the Chinese rows
FINE_TUNES = [("ChnSentiCorp test accuracy", "chnsenticorp_scratch", ["--num_train_epochs", "3"], "test_accuracy"),
              ("CLUENER dev F1 (softmax)", "cluener_scratch", [], "eval_f1"),
              ("CLUENER dev F1 (CRF)", "cluener_scratch", ["--crf", "True"], "eval_f1")]


def flops_per_token(folder: Path, block_length: int, mlm_probability: float) -> float:
    """Training FLOPs per token of a pretraining run (forward and backward: 3 x 2 x multiply-adds): the encoder's
    weights and attention at every position, the output layer (transform and vocabulary) at the masked ones."""
    config = json.loads((folder / "config.json").read_text())
    hidden, layers, vocabulary = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    encoder = layers * (4 * hidden * hidden + 2 * hidden * config["intermediate_size"])
    attention = layers * 2 * block_length * hidden
    head = (hidden * hidden + hidden * vocabulary) * mlm_probability
    return 6 * (encoder + attention + head)


def fine_tune(work: Path, name: str, model_flags: list[str], data_dir: str, extra: list[str], tasks,
              seeds: list[str]) -> list[str]:
    """The fine-tuned scores of one model (new from scratch, or a pretrained folder): one cell per task, each
    seed's score, or their mean and then each."""
    cells = []
    for k, (_, config, flags, key) in enumerate(tasks):
        scores = []
        for seed in seeds:
            run, took = run_or_read_back(work / f"{name}-{k}-seed{seed}", model_flags, data_dir, *flags, "--seed", seed,
                                         *extra, recipe="chinese_ernie", config=config)
            scores.append(run[key])
            print(f"bench: {name}: {config} {' '.join(flags)} seed {seed}: {key} {run[key]:.4f} ({took})",
                  file=sys.stderr)
        cells.append(seeds_cell(scores))
    return cells


def main():
    """Every masking's pretraining and fine-tunes, one after the other; the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--steps", default="4000", help="pretraining steps, the same for every masking")
    parser.add_argument("--maskings", default="token,whole_word,knowledge")
    parser.add_argument("--skip_scratch", action="store_true", help="leave out the models trained from scratch")
    parser.add_argument("--work", default=None, help="keep the outputs here (default: a temporary folder)")
    parser.add_argument("--pretrain_flags", default="", help="more flags for each pretraining run")
    parser.add_argument("--recipe_flags", default="", help="more flags for every fine-tuning run")
    parser.add_argument("--tasks", default="0,1,2", help="which fine-tunes, by number: 0 ChnSentiCorp, 1 CLUENER, "
                                                         "2 CLUENER with a CRF; empty: none")
    parser.add_argument("--seeds", default="42", help="fine-tuning seeds, comma-separated: each fine-tune once per seed")
    parser.add_argument("--matmul_seconds", type=float, default=3.0, help="time spent on the matmul peak")
    args = parser.parse_args()
    tasks = [FINE_TUNES[int(k)] for k in args.tasks.split(",") if k]  # none: the pretraining runs alone
    extra = shlex.split(args.recipe_flags)
    seeds = args.seeds.split(",")
    rows = []
    peak = matmul_peak("bf16" if bf16_supported() else "fp32", seconds=args.matmul_seconds)  # the precision the recipes train in here
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        if not args.skip_scratch:
            rows.append(("from scratch (no pretraining)", "", "", "",
                         *fine_tune(work, "scratch", [], args.data_dir, extra, tasks, seeds)))
        for masking in args.maskings.split(","):
            out = work / f"pretrained-{masking}"
            run, took = run_or_read_back(out, [], args.data_dir, "--masking", masking, "--max_steps", args.steps,
                                         *shlex.split(args.pretrain_flags), recipe="pretraining", config="zh_corpus")
            steps = json.loads((out / "trainer_state.json").read_text())["global_step"]
            if steps != int(args.steps):
                sys.exit(f"bench: {out} holds a pretraining of {steps} steps, not --steps {args.steps}: move it away")
            print(f"bench: pretraining, {masking}: held-out loss {run['eval_loss']:.3f} ({took})", file=sys.stderr)
            model = ["--scratch_model_type", "none", "--model", str(out)]
            share = run["train_tokens_per_second"] * flops_per_token(out, run["max_seq_length"], 0.15) / 1e9 / peak
            rows.append((f"pretrained, `{masking}` masking", f"{run['eval_loss']:.3f}", f"{run['train_runtime'] / 60:.1f} min",
                         f"{run['train_tokens_per_second']:,.0f} ({share:.0%})",
                         *fine_tune(work, masking, model, args.data_dir, extra, tasks, seeds)))
    print(f"# Masking strategies: zh_corpus pretraining, {args.steps} steps each, then the run_all.sh fine-tunes "
          f"(fine-tuning seeds {', '.join(seeds)})\n")
    print(f"Matrix-multiply peak measured here: {peak:.0f} GFLOP/s (tokens/s in brackets: the share of it training "
          "reached)\n")
    print_table(["model", "held-out MLM loss (own masking)", "pretraining time", "tokens/s (share of peak)",
                 *(name for name, *_ in tasks)], rows)


if __name__ == "__main__":
    main()
