"""Which masking helps which task: a small ERNIE pretrained on zh_corpus with each masking, then fine-tuned.

    python bench/masking.py [--data_dir ../shared/data] [--steps 1200] [--maskings token,whole_word,knowledge]

For each masking, the pretraining recipe's configs/zh_corpus.yaml (2 layers, hidden 128, character
vocabulary from the corpus) runs for the same number of steps; its output is then fine-tuned by the
Chinese recipe exactly as `bash run_all.sh` fine-tunes the scratch rows (same configs, flags and seed;
`--scratch_model_type none --model <pretrained folder>`): ChnSentiCorp, CLUENER2020 with the softmax
head and with the CRF. The scratch rows themselves run too unless --skip_scratch. Each run is its own
process, one after the other; the outputs stay under --work. Prints the held-out MLM loss each
pretraining reached, its time and tokens/s, and every fine-tuned score.
"""

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`

from bench.harness import DATA_DIR, print_table, run_recipe  # noqa: E402

# name, config, flags, score key: as run_all.sh's quick profile runs the Chinese rows
FINE_TUNES = [("ChnSentiCorp test accuracy", "chnsenticorp_scratch", ["--num_train_epochs", "3"], "test_accuracy"),
              ("CLUENER dev F1 (softmax)", "cluener_scratch", [], "eval_f1"),
              ("CLUENER dev F1 (CRF)", "cluener_scratch", ["--crf", "True"], "eval_f1")]


def fine_tune(work: Path, name: str, model_flags: list[str], data_dir: str, extra: list[str]) -> list[str]:
    """The three fine-tuned scores of one model (new from scratch, or a pretrained folder)."""
    scores = []
    for k, (_, config, flags, key) in enumerate(FINE_TUNES):
        run, seconds, _ = run_recipe(work / f"{name}-{k}", model_flags, data_dir, *flags, *extra,
                                     recipe="chinese_ernie", config=config, as_configured=True)
        scores.append(f"{run[key]:.4f}")
        print(f"bench: {name}: {config} {' '.join(flags)}: {key} {run[key]:.4f} ({seconds:.0f} s)", file=sys.stderr)
    return scores


def main():
    """Every masking's pretraining and fine-tunes, one after the other; the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--steps", default="1200", help="pretraining steps, the same for every masking")
    parser.add_argument("--maskings", default="token,whole_word,knowledge")
    parser.add_argument("--skip_scratch", action="store_true", help="leave out the models trained from scratch")
    parser.add_argument("--work", default=None, help="keep the outputs here (default: a temporary folder)")
    parser.add_argument("--pretrain_flags", default="", help="more flags for each pretraining run")
    parser.add_argument("--recipe_flags", default="", help="more flags for every fine-tuning run")
    args = parser.parse_args()
    extra = shlex.split(args.recipe_flags)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        if not args.skip_scratch:
            rows.append(("from scratch (no pretraining)", "", "", "", *fine_tune(work, "scratch", [], args.data_dir, extra)))
        for masking in args.maskings.split(","):
            out = work / f"pretrained-{masking}"
            run, seconds, _ = run_recipe(out, [], args.data_dir, "--masking", masking, "--max_steps", args.steps,
                                         *shlex.split(args.pretrain_flags), recipe="pretraining", config="zh_corpus",
                                         as_configured=True)
            print(f"bench: pretraining, {masking}: held-out loss {run['eval_loss']:.3f} ({seconds:.0f} s)",
                  file=sys.stderr)
            model = ["--scratch_model_type", "none", "--model", str(out)]
            rows.append((f"pretrained, `{masking}` masking", f"{run['eval_loss']:.3f}", f"{run['train_runtime'] / 60:.1f} min",
                         f"{run['train_tokens_per_second']:,.0f}", *fine_tune(work, masking, model, args.data_dir, extra)))
    print(f"# Masking strategies: zh_corpus pretraining, {args.steps} steps each, then the run_all.sh fine-tunes\n")
    print_table(["model", "held-out MLM loss (own masking)", "pretraining time", "tokens/s",
                 *(name for name, *_ in FINE_TUNES)], rows)


if __name__ == "__main__":
    main()
