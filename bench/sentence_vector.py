"""Which vector the sentiment classifier reads: `[CLS]` (the recipe's head) or the mean of the tokens.

    python bench/sentence_vector.py [--data_dir ../shared/data] [--models scratch,FOLDER] [--seeds 42,43,44] [--work W]

Fine-tunes ChnSentiCorp as `bash run_all.sh` fine-tunes the Chinese scratch row (chnsenticorp_scratch.yaml,
3 epochs), for each of --models (`scratch`: a new small RoFormer; a folder: `--scratch_model_type none --model
FOLDER`), once with RoFormer's classification head as it is (it reads the final `[CLS]` vector) and once with
the same head reading the mean of the final token vectors (padding left out). A pretraining by masked-word
prediction gives `[CLS]` no target of its own; the mean reads the vectors that had one. The mean is a
diagnostic, not a recipe option: its model folder holds an ordinary RoFormer classifier, which `pipeline()`
would load reading `[CLS]` again. Each run is its own process (this script with --pooling mean patches the
head, then runs the recipe). Outputs stay under --work, where a finished run is read back. Prints test and
dev accuracy: the mean over the seeds, then each seed's.
"""

import argparse
import functools
import json
import runpy
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`

from bench.harness import DATA_DIR, print_table, run_or_read_back, seeds_cell  # noqa: E402


def read_mean_of_tokens() -> None:
    """Make RoFormer's sequence classifier read the mean of the final token vectors instead of `[CLS]`: the same
    layers (dropout, dense, activation, dropout, output) after it."""
    from transformers.activations import ACT2FN
    from transformers.models.roformer import modeling_roformer as roformer

    forward = roformer.RoFormerForSequenceClassification.forward

    @functools.wraps(forward)  # the same signature: Trainer keeps the columns forward() takes
    def keep_mask(self, input_ids=None, attention_mask=None, *args, **kwargs):
        self.classifier.attention_mask = attention_mask
        return forward(self, input_ids, attention_mask, *args, **kwargs)

    def mean_head(self, features, **kwargs):
        if self.attention_mask is None:
            x = features.mean(1)
        else:
            mask = self.attention_mask.unsqueeze(-1).to(features.dtype)
            x = (features * mask).sum(1) / mask.sum(1)
        x = ACT2FN[self.config.hidden_act](self.dense(self.dropout(x)))
        return self.out_proj(self.dropout(x))

    roformer.RoFormerForSequenceClassification.forward = keep_mask
    roformer.RoFormerClassificationHead.forward = mean_head


def fine_tune(out: Path, model: str, pooling: str, seed: str, data_dir: str, extra: list[str]) -> tuple[dict, str]:
    """One fine-tune in its own process (this script wrapping the recipe), or its results when `out` holds them."""
    model_flags = [] if model == "scratch" else ["--scratch_model_type", "none", "--model", model]
    return run_or_read_back(out, model_flags, data_dir, "--num_train_epochs", "3", "--seed", seed, *extra,
                            recipe="chinese_ernie", config="chnsenticorp_scratch",
                            wrapper=(__file__, "--pooling", pooling))


def main():
    """Every model with each head's input, every seed; the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--models", default="scratch", help="comma-separated: `scratch` or pretrained folders")
    parser.add_argument("--seeds", default="42", help="fine-tuning seeds, comma-separated")
    parser.add_argument("--work", default=None, help="keep the outputs here (default: a temporary folder)")
    parser.add_argument("--recipe_flags", default="", help="more flags for every fine-tune")
    args = parser.parse_args()
    seeds = args.seeds.split(",")
    for model in args.models.split(","):
        config = Path(model) / "config.json"
        if model != "scratch" and json.loads(config.read_text()).get("model_type") != "roformer":
            sys.exit(f"{config}: not a RoFormer; the mean is patched into RoFormer's classification head only")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        for k, model in enumerate(args.models.split(",")):
            for pooling in ("cls", "mean"):
                runs = []
                for seed in seeds:
                    run, took = fine_tune(work / f"{k}-{pooling}-seed{seed}", model, pooling, seed, args.data_dir,
                                          shlex.split(args.recipe_flags))
                    runs.append(run)
                    print(f"bench: {model} {pooling} seed {seed}: test {run['test_accuracy']:.4f} ({took})",
                          file=sys.stderr)
                reads = "`[CLS]` (the recipe's head)" if pooling == "cls" else "mean of the tokens"
                rows.append((model, reads, seeds_cell([run["test_accuracy"] for run in runs]),
                             seeds_cell([run["eval_accuracy"] for run in runs])))
    print(f"# ChnSentiCorp, the scratch row's fine-tuning (3 epochs), seeds {', '.join(seeds)}\n")
    print_table(["model", "classifier reads", "test accuracy", "dev accuracy"], rows)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--pooling"]:  # one fine-tune: `--pooling cls|mean RECIPE FLAGS...`
        if sys.argv[2] == "mean":
            read_mean_of_tokens()
        sys.argv = sys.argv[3:]
        runpy.run_path(sys.argv[0], run_name="__main__")
    else:
        main()
