"""Training controls measured: cross-validation, L1, SGD against AdamW, class weights, on an SST-2 subset.

    python bench/training_controls.py --model MODEL_FOLDER --data_dir ../shared/data [--only cv,l1,sgd,weights,ner_cv]

Every run is the sentiment recipe with the SST-2 config (MiniLM, 1 epoch, seed 42), on the first 2,000
training sentences, scored on the SST-2 dev set; each run is its own process. Prints a table:
- cv: 5-fold cross-validation (mean +- sample std of fold accuracy) and its wall time against one
  ordinary run of the same size;
- l1: the share of encoder and head weights with |w| < 1e-3, with and without --l1_lambda, and the accuracy;
- sgd: SGD with momentum 0.9 at several learning rates beside AdamW (the default);
- weights: an imbalanced subset (1,900 positive, 100 negative; 3 epochs): minority recall and macro F1
  with and without --class_weights balanced;
- ner_cv: the NER recipe's CoNLL-2003 config on the first 2,000 training sentences, 3 epochs: 5-fold
  cross-validation over sentences (entity F1 mean +- sample std) against one ordinary run (dev F1).
"""

import argparse
import csv
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: `bench`, `common`, `recipes`

from bench.harness import DATA_DIR, print_table, run_recipe  # noqa: E402


def recipe(out: Path, args, *flags: str, task: str = "sentiment", config: str = "sst2") -> tuple[dict, float]:
    """A recipe run (bench/harness.py) with this script's model: its results (cv_results.json for --cv_folds) and
    wall seconds."""
    results_file = "cv_results.json" if "--cv_folds" in flags else "all_results.json"
    results, seconds, _ = run_recipe(out, ["--model", args.model], args.data_dir, *flags, recipe=task, config=config,
                                     results_file=results_file)
    return results, seconds


def small_weights(model_dir: Path, threshold: float = 1e-3) -> dict[str, float]:
    """Share of |w| < threshold among the weights weight decay covers, in the encoder and in the head."""
    from safetensors.torch import load_file

    weights = load_file(str(model_dir / "model.safetensors"))
    shares = {}
    for part, keep in (("encoder", lambda n: not n.startswith("classifier")), ("head", lambda n: n.startswith("classifier"))):
        chosen = [w for n, w in weights.items() if keep(n) and "bias" not in n and "LayerNorm" not in n]
        small = sum(int((w.float().abs() < threshold).sum()) for w in chosen)
        shares[part] = small / sum(w.numel() for w in chosen)
    return shares


def labelled_csv(source: Path, path: Path, limits: dict[str, int] | None = None) -> Path:
    """SST-2 rows (`sentence<TAB>0|1`) as a text,label CSV with label names; `limits`: the first N of each label."""
    names, kept, counts = {"0": "negative", "1": "positive"}, [], {"0": 0, "1": 0}
    with open(source, encoding="utf-8") as f:
        next(f)
        for line in f:
            text, label = line.rstrip("\n").rsplit("\t", 1)
            if limits is None or counts[label] < limits[label]:
                counts[label] += 1
                kept.append((text, names[label]))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(kept)
    return path


def main():
    """The runs asked for (--only), one after the other; a table of their results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data_dir", default=DATA_DIR)
    parser.add_argument("--only", default="cv,l1,sgd,weights,ner_cv")
    parser.add_argument("--l1_lambda", default="1e-5")
    parser.add_argument("--sgd_rates", default="0.01,0.03,0.1")
    parser.add_argument("--weights_epochs", default="3", help="epochs of the two imbalanced runs")
    parser.add_argument("--rows", default="2000", help="training rows (sentences) of every run but the imbalanced ones")
    args = parser.parse_args()
    parts = args.only.split(",")
    subset = ["--max_train_samples", args.rows]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        recipe(tmp / "warm", args, *subset, "--max_steps", "1")  # tokenizes and caches SST-2 once, outside the timings
        plain, plain_s = recipe(tmp / "plain", args, *subset)
        rows.append(("AdamW (default), 2,000 rows", f"dev accuracy {plain['eval_accuracy']:.4f}",
                     f"{plain_s:.0f} s (training {plain['train_runtime']:.0f} s)"))
        if "cv" in parts:
            cv, cv_s = recipe(tmp / "cv", args, *subset, "--cv_folds", "5")
            fold_training = sum(f["train_runtime"] for f in cv["folds"])
            rows.append(("5-fold CV, 2,000 rows", f"fold accuracy {cv['mean']['accuracy']:.4f} +- "
                         f"{cv['std_dev']['accuracy']:.4f} (sample std); folds: "
                         + ", ".join(f"{f['accuracy']:.4f}" for f in cv["folds"]),
                         f"{cv_s:.0f} s = {cv_s / plain_s:.2f}x one run; training {fold_training:.0f} s = "
                         f"{fold_training / plain['train_runtime']:.2f}x"))
        if "l1" in parts:
            l1, l1_s = recipe(tmp / "l1", args, *subset, "--l1_lambda", args.l1_lambda)
            before, after = small_weights(tmp / "plain"), small_weights(tmp / "l1")
            rows.append(("no L1: share |w| < 1e-3", f"encoder {before['encoder']:.2%}, head {before['head']:.2%}", ""))
            rows.append((f"--l1_lambda {args.l1_lambda}: share |w| < 1e-3",
                         f"encoder {after['encoder']:.2%}, head {after['head']:.2%}; dev accuracy "
                         f"{l1['eval_accuracy']:.4f} ({l1['eval_accuracy'] - plain['eval_accuracy']:+.4f})", f"{l1_s:.0f} s"))
        if "sgd" in parts:
            for rate in args.sgd_rates.split(","):
                sgd, sgd_s = recipe(tmp / f"sgd{rate}", args, *subset, "--optim", "sgd", "--optim_args", "momentum=0.9",
                                    "--learning_rate", rate)
                rows.append((f"SGD momentum 0.9, lr {rate}", f"dev accuracy {sgd['eval_accuracy']:.4f}", f"{sgd_s:.0f} s"))
        if "weights" in parts:
            sst2 = Path(args.data_dir) / "sst2"
            train = labelled_csv(sst2 / "train.tsv", tmp / "imbalanced.csv", {"1": 1900, "0": 100})
            dev = labelled_csv(sst2 / "dev.tsv", tmp / "dev.csv")
            for flags, name in (((), "imbalanced 95/5, unweighted"), (("--class_weights", "balanced"), "imbalanced 95/5, balanced")):
                run, run_s = recipe(tmp / name.replace(" ", "_").replace("/", ""), args, "--train_file", str(train),
                                    "--validation_file", str(dev), "--num_train_epochs", args.weights_epochs, *flags)
                name += f", {args.weights_epochs} epochs"
                rows.append((name, f"negative recall {run['eval_recall_negative']:.4f}, macro F1 "
                             f"{run['eval_f1_macro']:.4f}, accuracy {run['eval_accuracy']:.4f}", f"{run_s:.0f} s"))
        if "ner_cv" in parts:
            ner, epochs = {"task": "ner", "config": "conll2003"}, ("--num_train_epochs", "3")
            recipe(tmp / "ner_warm", args, *subset, "--max_steps", "1", **ner)  # CoNLL-2003 read and cached once
            one, one_s = recipe(tmp / "ner_plain", args, *subset, *epochs, **ner)
            rows.append(("NER, 2,000 CoNLL-2003 sentences, 3 epochs", f"dev entity F1 {one['eval_f1']:.4f}",
                         f"{one_s:.0f} s (training {one['train_runtime']:.0f} s)"))
            cv, cv_s = recipe(tmp / "ner_cv", args, *subset, *epochs, "--cv_folds", "5", **ner)
            rows.append(("NER 5-fold CV over sentences", f"fold entity F1 {cv['mean']['f1']:.4f} +- "
                         f"{cv['std_dev']['f1']:.4f} (sample std); folds: " + ", ".join(f"{f['f1']:.4f}" for f in cv["folds"]),
                         f"{cv_s:.0f} s = {cv_s / one_s:.2f}x one run"))
    print_table(["run", "result", "wall time"], rows)


if __name__ == "__main__":
    main()
