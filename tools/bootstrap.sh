#!/usr/bin/env bash
# Set up the workbook: a virtual environment in .venv with a CPU-only torch and the project installed
# in editable mode. Two installs:
#
#   bash tools/bootstrap.sh          # a student's: graded tests, mypy, the notebooks (JupyterLab, nbval)
#   bash tools/bootstrap.sh --dev    # maintainers, instructors, CI: the above plus the site's tooling
#                                    # (MkDocs, playwright), xdist and the benchmarks
#
#   bash tools/bootstrap.sh --torch-index   # print where torch would come from, and why; install nothing
#
# Where torch comes from: PyPI's torch for Linux is the CUDA build (several gigabytes), so on Linux
# torch comes from PyTorch's CPU index, unless pip has an index or a wheel folder of its own
# (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, or index-url, extra-index-url or find-links in
# pip's configuration) or the CPU index does not answer within 5 s (a machine that reaches only a
# mirror): then from pip's own configuration. Elsewhere (macOS, Windows) PyPI's torch is the CPU build.
# TORCH_INDEX_URL=URL chooses the index (TORCH_INDEX_URL= with nothing: pip's own configuration), for
# example https://download.pytorch.org/whl/cu126 for a CUDA build. TORCH_SPEC overrides the torch
# requirement (default torch==2.13.0); PYTHON the interpreter used to create the environment.
# Re-running it is cheap: existing pieces are kept, and a student's .venv becomes a maintainer's with --dev.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: bash tools/bootstrap.sh [--dev | --torch-index]" >&2; exit 2; }
EXTRA=student
case $# in
  0) ;;
  1) case $1 in
       --dev) EXTRA=dev ;;
       --torch-index) EXTRA=none ;;
       -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
       *) usage ;;
     esac ;;
  *) usage ;;
esac

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
CPU_INDEX=https://download.pytorch.org/whl/cpu

# Prints "URL|why" (URL empty: pip's own configuration decides), as the header says.
torch_index() {
  if [ -n "${TORCH_INDEX_URL+set}" ]; then
    printf '%s|%s\n' "$TORCH_INDEX_URL" "TORCH_INDEX_URL is set"
  elif [ "$(uname -s)" != Linux ]; then
    printf '|%s\n' "not Linux: PyPI's torch is the CPU build here"
  elif [ -n "${PIP_INDEX_URL:-}${PIP_EXTRA_INDEX_URL:-}${PIP_FIND_LINKS:-}" ] ||
       "$PYTHON" -m pip config list 2>/dev/null | grep -qE '^[^=]*\.(index-url|extra-index-url|find-links)='; then
    printf '|%s\n' "pip has an index or a wheel folder of its own (see: $PYTHON -m pip config list)"
  elif "$PYTHON" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=5)" \
       "$CPU_INDEX" 2>/dev/null; then
    printf '%s|%s\n' "$CPU_INDEX" "PyTorch's CPU index"
  else
    printf '|%s\n' "PyTorch's CPU index did not answer within 5 s"
  fi
}

IFS='|' read -r TORCH_INDEX WHY < <(torch_index)
FROM=$TORCH_INDEX
[ -n "$FROM" ] || FROM="pip's own configuration"
if [ "$EXTRA" = none ]; then
  echo "torch ($TORCH_SPEC) would come from: $FROM ($WHY)"
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and on its own, so that the project's "torch>=2.2" is already satisfied and pip
# never reaches for a multi-gigabyte CUDA build.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "torch ($TORCH_SPEC) from $FROM ($WHY)"
  # PyPI stays as an extra index for torch's own requirements; a "+cpu" build sorts above PyPI's.
  if [ -z "$TORCH_INDEX" ] ||
     ! .venv/bin/python -m pip install --quiet --index-url "$TORCH_INDEX" --extra-index-url https://pypi.org/simple "$TORCH_SPEC"; then
    [ -z "$TORCH_INDEX" ] || echo "torch could not be installed from $TORCH_INDEX; trying pip's own configuration" >&2
    .venv/bin/python -m pip install --quiet "$TORCH_SPEC"
  fi
fi
.venv/bin/python -m pip install --quiet -e ".[$EXTRA]"

echo
.venv/bin/python -m labkit.core.nextsteps "$EXTRA"  # what to do next, in the user's language
