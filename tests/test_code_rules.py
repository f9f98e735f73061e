"""Rules of the code base that no single test of behaviour would notice breaking: the layer order of common/
(import-linter's contract in pyproject.toml, imports inside functions included), test modules that stand alone,
and a docstring on every public function and class."""

import ast
import subprocess
import sys


def test_common_keeps_its_layers(repo):
    # In its own process: import-linter reconfigures logging, which later tests read.
    check = ("import sys; from importlinter.cli import lint_imports; "
             "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    done = subprocess.run([sys.executable, "-c", check], cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_no_test_module_imports_another(repo):
    """Shared helpers live in conftest.py as fixtures: a test module stays readable (and runnable) alone."""
    offenders = []
    for path in sorted((repo / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name} imports {name}" for name in names
                          if name.startswith(("tests", "test_")) or name == "conftest"]
    assert not offenders, offenders


def test_every_public_function_and_class_has_a_docstring(repo):
    missing = []
    for path in sorted([*(repo / "common").rglob("*.py"), *(repo / "recipes").rglob("*.py"), *(repo / "bench").rglob("*.py")]):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            members = node.body if isinstance(node, ast.ClassDef) else []
            for item in [node, *members]:
                if isinstance(item, (ast.FunctionDef, ast.ClassDef)) and not item.name.startswith("_") \
                        and ast.get_docstring(item) is None:
                    missing.append(f"{path.relative_to(repo)}: {item.name}")
    assert not missing, missing


def test_the_guides_stay_short(repo):
    """README.md is a guide, not a catalogue (at most 200 lines), and so is each recipe's (at most 150): detail
    goes to docs/, history to CHANGELOG.md."""
    limits = {repo / "README.md": 200, **{path: 150 for path in sorted((repo / "recipes").glob("*/README.md"))}}
    too_long = {str(path.relative_to(repo)): n for path, limit in limits.items()
                if (n := len(path.read_text().splitlines())) > limit}
    assert len(limits) > 5 and not too_long, too_long


def test_recipe_mains_read_on_a_screen_or_two(repo):
    """A recipe's run.py stays short enough to read top to bottom: its main at most about 100 lines (the Chinese
    recipe, with two tasks, at most 150 for the file)."""
    long_mains = {}
    for path in sorted((repo / "recipes").glob("*/run.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "main" and node.end_lineno - node.lineno + 1 > 100:
                long_mains[str(path.relative_to(repo))] = node.end_lineno - node.lineno + 1
    chinese = len((repo / "recipes" / "chinese_ernie" / "run.py").read_text().splitlines())
    assert not long_mains and chinese <= 150, (long_mains, chinese)
