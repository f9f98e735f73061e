"""What a hyperparameter search leaves in `--output_dir/hp_search/`, written as soon as the search ends:

- `trials.csv`: every trial of the study (every worker's): number, state, objective, duration, the worker
  that ran it, and its settings;
- `best_params.yaml`: the run's settings with the best trial's values, without the search's own flags:
  `run.py --config best_params.yaml --output_dir OTHER` trains the best trial again;
- `optimization_history.png` and `param_importances.png` (Optuna's plots; importances need two
  completed trials whose settings differ).

Each file is written under a temporary name and renamed, so that a file there is always whole.
"""

import logging
import os
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import yaml  # noqa: E402

logger = logging.getLogger(__name__)

SEARCH_FLAGS = ("hp_search_trials", "hp_search_space", "hp_search_storage", "hp_search_study", "hp_search_pruner",
                "hp_search_train_best")


def write_search_results(output_dir, search, settings) -> list[Path]:
    """trials.csv, best_params.yaml and the plots in `output_dir/hp_search/`; the paths written."""
    folder = Path(output_dir) / "hp_search"
    folder.mkdir(parents=True, exist_ok=True)
    written = [write_trials(folder / "trials.csv", search), write_best_params(folder / "best_params.yaml", search,
                                                                              settings)]
    written += [path for path in (plot(folder / "optimization_history.png", search, "history"),
                                  plot(folder / "param_importances.png", search, "importances")) if path]
    logger.info(f"Search results: {', '.join(str(p) for p in written)}")
    return written


def trials_table(search):
    """One row per trial: number, state, the objective, duration in seconds, worker, pruned at, and settings."""
    frame = search.study.trials_dataframe(attrs=("number", "state", "value", "duration", "params", "user_attrs"))
    frame = frame.rename(columns={"value": search.objective, "user_attrs_worker": "worker"})
    frame["duration_s"] = frame.pop("duration").dt.total_seconds().round(1)
    frame["pruned_at_examples"] = [max(t.intermediate_values) if t.state.name == "PRUNED" and t.intermediate_values
                                   else None for t in search.study.trials]
    frame.columns = [c.removeprefix("params_") for c in frame.columns]
    return frame


def write_trials(path: Path, search) -> Path:
    """trials.csv, every trial of the study in number order."""
    temporary = path.with_name(path.name + ".tmp")
    trials_table(search).to_csv(temporary, index=False)
    os.replace(temporary, path)
    return path


def write_best_params(path: Path, search, settings) -> Path:
    """best_params.yaml: the run's settings with the best trial's values, as a --config file."""
    values = {k: v for k, v in settings.values.items() if k not in SEARCH_FLAGS}
    values.update(search.best_params)
    best = search.study.best_trial
    header = (f"# The best trial ({best.number}) of study '{search.study.study_name}': {search.objective} "
              f"{best.value:.6g}.\n# These settings and the run's others. Train them again: "
              "run.py --config best_params.yaml --output_dir OTHER_FOLDER\n")
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(header + yaml.safe_dump(values, sort_keys=False, allow_unicode=True), encoding="utf-8")
    os.replace(temporary, path)
    return path


def plot(path: Path, search, kind: str) -> Path | None:
    """Optuna's optimisation history or parameter importances as a PNG; None where it cannot be drawn yet."""
    visualization = optuna.visualization.matplotlib
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" warnings of Optuna's matplotlib backend
        try:
            if kind == "history":
                axes = visualization.plot_optimization_history(search.study, target_name=search.objective)
            else:
                axes = visualization.plot_param_importances(search.study)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            logger.info(f"{path.name} not drawn: {error}")
            return None
    figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
    figure.set_size_inches(7, 4.5)
    figure.tight_layout()
    temporary = path.with_name(path.stem + ".tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    os.replace(temporary, path)
    return path
