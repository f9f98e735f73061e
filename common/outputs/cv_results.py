"""The results of k-fold cross-validation (common/training/cross_validation.py): cv_results.json and a README table."""

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def write_cv_results(output_dir, summary: dict) -> None:
    """cv_results.json and a README.md table of each fold's metrics, their mean and sample std."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cv_results.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    shown = [m for m in ("accuracy", "f1_macro", "f1", "loss") if m in summary["mean"]]
    lines = [f"# {summary['cv_folds']}-fold cross-validation", "",
             f"Seed {summary['seed']}, {'stratified by label' if summary['stratified'] else 'not stratified'}; "
             f"checkpoint chosen by: {summary['checkpoint_selection']}. Mean and sample standard deviation "
             "(ddof=1) over the folds; each training row is scored once, by the fold that held it out.", "",
             "| fold | rows held out | " + " | ".join(shown) + " |", "|---|---|" + "---|" * len(shown)]
    for fold in summary["folds"]:
        lines.append(f"| {fold['fold']} | {len(fold['held_out_rows'])} | "
                     + " | ".join(f"{fold[m]:.4f}" for m in shown) + " |")
    lines.append("| mean +- std | | " + " | ".join(f"{summary['mean'][m]:.4f} +- {summary['std_dev'][m]:.4f}"
                                                   for m in shown) + " |")
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for m in shown:
        logger.info(f"Cross-validation {m}: {summary['mean'][m]:.4f} +- {summary['std_dev'][m]:.4f} "
                    f"(mean +- sample std over {summary['cv_folds']} folds)")
