"""Every command the READMEs, docs and script headers show parses as written: the recipe's flags and
config files exist and TrainingArguments accepts the combination; run_all.sh knows each option and run.

They are not run (most name Hub models); `bash run_all.sh` runs the offline ones.
"""

import importlib
import re
import shlex
from pathlib import Path

import pytest

from common.config.parsing import parse_args

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", *map(str, sorted(REPO.glob("docs/*.md"))), *map(str, sorted(REPO.glob("recipes/*/README.md"))),
             *map(str, sorted(REPO.glob("recipes/*/run.py"))), "run_all.sh", "bench/throughput.py"]
STARTS = ("python recipes/", ".venv/bin/python recipes/", "torchrun ", "accelerate launch ", "bash run_all.sh", "HF_HUB_OFFLINE=1 python recipes/")


def shown_commands():
    """(file, line number, words) of every command line shown, with `\\` continuations joined and comments cut."""
    for document in DOCUMENTS:
        lines = (REPO / document).read_text(encoding="utf-8").splitlines()
        number = 0
        while number < len(lines):
            start, text = number + 1, lines[number].strip().lstrip("#").strip()
            while text.endswith("\\") and number + 1 < len(lines):
                number += 1
                text = text[:-1] + " " + lines[number].strip()
            number += 1
            if text.startswith(STARTS) and "--config ..." not in text:
                yield pytest.param(document, start, shlex.split(text, comments=True), id=f"{Path(document).name}:{start}")


def run_all_options_and_runs() -> tuple[set[str], set[str]]:
    script = (REPO / "run_all.sh").read_text()
    options = set(re.findall(r"^\s+(--\w+)\)", script, re.M))
    runs = set(re.findall(r'^\s+"([\w-]+)\|', script, re.M))
    return options, runs


@pytest.mark.parametrize("document, line, words", list(shown_commands()))
def test_shown_command_parses(document, line, words, recipe, monkeypatch):
    monkeypatch.chdir(REPO)  # commands are shown from the repository's top folder
    words = [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]  # environment assignments
    where = f"{document}, line {line}: {' '.join(words)}"
    if words[:2] == ["bash", "run_all.sh"]:
        options, runs = run_all_options_and_runs()
        flags = words[2:words.index("--")] if "--" in words else words[2:]
        unknown = [w for w in flags if w.startswith("--") and w not in options]
        assert not unknown, f"{where}: run_all.sh has no option {unknown}"
        if "--only" in flags:
            assert flags[flags.index("--only") + 1] in runs, f"{where}: no run of that name (runs: {sorted(runs)})"
        recipe_flags = words[words.index("--") + 1:] if "--" in words else []
        if recipe_flags:
            parse_args(recipe("sentiment").ARGUMENTS, recipe_flags)
        return
    script = next(w for w in words if w.startswith("recipes/") and w.endswith(".py"))
    launcher = words[:words.index(script)]
    if "--config_file" in launcher:
        assert Path(launcher[launcher.index("--config_file") + 1]).is_file(), where
    module = importlib.import_module(script.removesuffix(".py").replace("/", "."))  # run.py, or predict.py
    configs = getattr(module, "CONFIGS", None)
    try:
        parse_args(module.ARGUMENTS, words[words.index(script) + 1:], getattr(module, "BENCHMARK_CONFIG", None),
                   configs / "default.yaml" if configs else None)
    except SystemExit as error:
        pytest.fail(f"{where}: {error}")


def test_the_commands_were_found():
    assert len(list(shown_commands())) >= 25, "the command pattern no longer matches the documents"
