#!/usr/bin/env bash
# Set up the workbook on a fresh machine: a virtual environment in .venv with a CPU-only torch and
# the project installed in editable mode with its development extras.
#
#   bash tools/bootstrap.sh            # then: .venv/bin/pytest
#
# TORCH_SPEC overrides the torch requirement (default torch==2.13.0, a CPU build); PYTHON the
# interpreter used to create the environment. Re-running it is cheap: existing pieces are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and on its own, so that the project's "torch>=2.2" is already satisfied and pip
# never reaches for a multi-gigabyte CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
fi
.venv/bin/python -m pip install --quiet -e ".[dev]"
