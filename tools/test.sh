#!/usr/bin/env bash
# The maintainers' test command (the README's): verify the whole workbook. Needs `bash tools/bootstrap.sh --dev`.
# labkit is type-checked (mypy --strict, which follows it into tests/scenarios.py) and linted (ruff, with the
# graded tests and conftest.py) first, then the maintainers' tests run.
# Extra arguments go to pytest, e.g. `bash tools/test.sh -k overlay`.
set -euo pipefail
cd "$(dirname "$0")/.."
# The tests read the tools' messages in English (minituner.i18n); those about Spanish ask for it themselves.
export LANGUAGE=en
.venv/bin/mypy --strict tools/labkit
.venv/bin/ruff check tools/labkit tests conftest.py
# The slowest tests are listed at the end, so that the suite's time stays visible.
exec .venv/bin/python -m pytest tools/tests --durations=12 "$@"
