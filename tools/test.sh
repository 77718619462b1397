#!/usr/bin/env bash
# The maintainers' test command (the README's): verify the whole workbook. Needs `bash tools/bootstrap.sh --dev`.
# Extra arguments go to pytest, e.g. `bash tools/test.sh -k overlay`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest tools/tests "$@"
