"""The results table: one row per run and split, with the published figure for that dataset.

    python -m common.outputs.results_table --out results outputs/sentiment-sst2 outputs/ner-conll2003 ...

Reads each output directory's `all_results.json` and writes `RESULTS.md` (a table, links to each
run's plots and model card) and `results.json` (the same facts) into `--out`, or prints the table.
"""

import argparse
import json
import os
from pathlib import Path

from common.outputs.model_card import model_name

# Published figures (see ../shared/data/README.md): (benchmark, split) -> (metric, figure, model, source)
REFERENCES = {
    ("sst2", "validation"): ("accuracy", 0.9232, "bert-base-cased", "transformers run_glue README, 3 epochs"),
    ("conll2003", "test"): ("f1", 0.9259, "bert-base-cased", "dslim/bert-base-NER model card"),
    ("chnsenticorp", "validation"): ("accuracy", 0.954, "ERNIE 1.0", "ymcui/Chinese-BERT-wwm, best of 10"),
    ("chnsenticorp", "test"): ("accuracy", 0.954, "ERNIE 1.0", "ymcui/Chinese-BERT-wwm, best of 10"),
    ("cluener2020", "validation"): ("f1", 0.8076, "BERT-base", "CLUENER2020 PyTorch baseline"),
    ("cluener2020", "test"): ("f1", 0.7963, "BERT-base", "CLUENER2020 PyTorch baseline"),
    ("cola", "validation"): ("matthews_correlation", 0.5653, "bert-base-cased", "transformers run_glue README, 3 epochs"),
    ("mrpc", "validation"): ("f1_equivalent", 0.8885, "bert-base-cased", "transformers run_glue README, 5 epochs"),
    ("rte", "validation"): ("accuracy", 0.6570, "bert-base-cased", "transformers run_glue README, 3 epochs"),
    ("stsb", "validation"): ("pearson_spearman_mean", 0.8856, "bert-base-cased",
                             "transformers run_glue README: Pearson 0.8864, Spearman 0.8848"),
}
SPLITS = {"eval": "validation", "test": "test"}


def benchmark_of(results: dict) -> str | None:
    """The benchmark a run's data came from (by its folder), or None for the user's own data."""
    sources = " ".join(results.get("data", {}).values())
    return next((name for name, _ in REFERENCES if f"{name}/" in sources), None)


def rows(output_dirs):
    """One table row per output folder, from its all_results.json (a folder without one: a failed run)."""
    for folder in map(Path, output_dirs):
        path = folder / "all_results.json"
        if not path.is_file():
            yield {"run": folder.name, "status": f"failed: no {path}"}
            continue
        results = json.loads(path.read_text())
        metric = results.get("main_metric") or "accuracy"  # the task's own: accuracy, or entity F1 for NER
        benchmark = benchmark_of(results)
        for prefix, split in SPLITS.items():
            if f"{prefix}_{metric}" not in results:
                continue
            reference = REFERENCES.get((benchmark, split))
            same = reference is not None and reference[0] == metric
            model = model_name(results.get("model", "?"))
            yield {
                "run": folder.name,
                "split": split,
                "examples": results.get("sizes", {}).get(split, ""),
                "model": model,
                "metric": metric,
                "score": round(results[f"{prefix}_{metric}"], 4),
                "published": f"{reference[1]:.4f} ({reference[2]}; {reference[3]})" if same else "",
                "model differs": ("yes" if reference[2] not in model else "no") if same else "",
                "train time (s)": round(results["train_runtime"]) if "train_runtime" in results else "",
                "train samples/s": round(results["train_samples_per_second"], 1)
                if "train_samples_per_second" in results else "",
                "hardware": results.get("hardware", ""),
                "plots and card": str(folder / "README.md"),
            }


def markdown_table(records, base: Path | None = None) -> str:
    """Links are made relative to `base` (the folder RESULTS.md goes to)."""
    records = list(records)
    columns = list(dict.fromkeys(key for record in records for key in record))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for record in records:
        cells = []
        for column in columns:
            value = record.get(column, "")
            if column == "plots and card" and value:
                value = f"[{Path(value).parent.name}]({os.path.relpath(value, base) if base else value})"
            cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    """`python -m common.outputs.results_table OUT...`: the table of runs against the published figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dirs", nargs="+")
    parser.add_argument("--out", help="folder for RESULTS.md and results.json (default: print the table)")
    parser.add_argument("--title", default="Results")
    parser.add_argument("--note", default="", help="text under the title (profile, models, data)")
    args = parser.parse_args(argv)
    records = list(rows(args.output_dirs))
    if not args.out:
        print(markdown_table(records))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(records, out)
    images = [f"![{Path(d).name} {png.stem}]({os.path.relpath(png, out)})"
              for d in args.output_dirs for png in sorted(Path(d).glob("*.png"))]
    text = "\n".join([f"# {args.title}", "", args.note, "", table, "",
                      "Published figures: base-size pretrained models on the full training data (see "
                      "`../shared/data/README.md`); `model differs: yes` marks rows where ours is another "
                      "(smaller, or trained from scratch) model, so the figures are not comparable.", "",
                      "## Plots", "", *images, ""])
    (out / "RESULTS.md").write_text(text, encoding="utf-8")
    (out / "results.json").write_text(json.dumps({"note": args.note, "rows": records}, indent=2, ensure_ascii=False)
                                      + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
