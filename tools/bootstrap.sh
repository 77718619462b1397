#!/usr/bin/env bash
# Set up the workbook: a virtual environment in .venv with a CPU-only torch and the project installed
# in editable mode. Two installs:
#
#   bash tools/bootstrap.sh          # a student's: graded tests, mypy, the notebooks (JupyterLab, nbval)
#   bash tools/bootstrap.sh --dev    # maintainers, instructors, CI: the above plus the site's tooling
#                                    # (MkDocs, playwright), xdist and the benchmarks
#
# TORCH_SPEC overrides the torch requirement (default torch==2.13.0, a CPU build); PYTHON the
# interpreter used to create the environment. Re-running it is cheap: existing pieces are kept, and a
# student's .venv becomes a maintainer's with --dev.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: bash tools/bootstrap.sh [--dev]" >&2; exit 2; }
EXTRA=student
case $# in
  0) ;;
  1) case $1 in
       --dev) EXTRA=dev ;;
       -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
       *) usage ;;
     esac ;;
  *) usage ;;
esac

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
.venv/bin/python -m pip install --quiet -e ".[$EXTRA]"

echo
if [ "$EXTRA" = dev ]; then
  echo "Set up for maintainers (.venv, with the docs and benchmark tooling). Next:"
  echo "  bash tools/test.sh"
else
  echo "Set up (.venv). Next:"
  echo "  source .venv/bin/activate"
  echo "  pytest            # the graded tests (red until you fill in src/minituner/lora.py)"
  echo "  check             # where you stand, block by block"
  echo "  jupyter lab labs/ # the notebooks"
fi
