"""Every recipe folder, copied outside the checkout, runs from there: the README's "copy a recipe" commands."""

import os
import re
import subprocess
import sys

import pytest

README_BLOCK = re.compile(r"## Copy a recipe as your template.*?```bash\n(.*?)```", re.S)


def readme_commands(repo) -> list[str]:
    """The README's copy commands: `cp -r recipes/sentiment ~/myproj/sentiment`, then the run in `~/myproj`."""
    return README_BLOCK.search((repo / "README.md").read_text()).group(1).strip().splitlines()


def run_in_copy(repo, tmp_path, recipe: str, flags: list[str]):
    """The README's two commands for `recipe`, with ~/myproj a temporary folder and the model and data swapped."""
    copy_line, run_line = readme_commands(repo)
    home = tmp_path / "home"
    (home / "myproj").mkdir(parents=True, exist_ok=True)
    copy_line = copy_line.replace("recipes/sentiment", f"{repo}/recipes/{recipe}").replace("sentiment", recipe)
    run_line = run_line.split(" && ")[1].split(" --")[0].replace("sentiment", recipe)  # python <recipe>/run.py
    venv = os.path.dirname(sys.executable)
    env = {**os.environ, "HOME": str(home), "PATH": f"{venv}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    env.pop("DATA_DIR", None)
    env.pop("PYTHONPATH", None)  # `common` comes from the installed project, `recipes` from nowhere
    subprocess.run(copy_line, shell=True, check=True, env=env, cwd=str(home))
    assert (home / "myproj" / recipe / "configs").is_dir()
    return subprocess.run(f"cd ~/myproj && {run_line} {' '.join(map(str, flags))}", shell=True, env=env,
                          cwd=str(home), capture_output=True, text=True, timeout=600)


COMMON = ["--output_dir", "out/mine", "--max_steps", "2", "--per_device_train_batch_size", "8", "--report_to", "none",
          "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end", "False"]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["sentiment", "text_classification", "ner", "chinese_ernie", "pretraining"])
def test_a_copied_recipe_runs_from_its_copy(recipe, repo, tmp_path, tiny_bert, write_csv, sentiment_rows,
                                            synthetic_conll):
    data = tmp_path / "data"
    data.mkdir()
    if recipe in ("sentiment", "text_classification"):
        flags = ["--model", tiny_bert, "--train_file", write_csv(data / "train.csv", sentiment_rows(40)), *COMMON]
    elif recipe == "ner":
        flags = ["--model", tiny_bert, "--train_file", synthetic_conll(data / "train.txt", 40, 0),
                 "--validation_file", synthetic_conll(data / "dev.txt", 10, 1), *COMMON]
    elif recipe == "chinese_ernie":
        rows = [("这部电影很好看" if i % 2 else "这部电影很难看", str(i % 2)) for i in range(40)]
        flags = ["--scratch_model_type", "roformer", "--train_file", write_csv(data / "train.csv", rows),
                 "--validation_split", "0.25", *COMMON]
    else:
        (data / "corpus.txt").write_text("".join(f"the movie was very good number {i} .\n" for i in range(200)))
        flags = ["--model", tiny_bert, "--train_file", data / "corpus.txt", "--max_seq_length", "16", *COMMON]
    done = run_in_copy(repo, tmp_path, recipe, flags)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "home" / "myproj" / "out" / "mine"
    assert (out / "config.json").is_file() and (out / "all_results.json").is_file()
    assert str(tmp_path / "home" / "myproj" / recipe / "configs") in (out / "run_config.yaml").read_text()


@pytest.mark.slow
def test_a_copied_recipe_names_the_data_folder_instead_of_reading_the_checkouts(repo, tmp_path, tiny_bert):
    done = run_in_copy(repo, tmp_path, "sentiment", ["--model", tiny_bert, "--output_dir", "out/mine"])
    assert done.returncode == 2
    assert "--benchmark sst2 without --data_dir: this recipe runs outside the project's checkout" in done.stderr
