"""A pytest plugin that writes each test's outcome as JSON, for labkit.overlay.

Enabled with `-p labkit.report`; the file named by the LABKIT_REPORT environment variable receives
a list of {"nodeid", "blocks", "outcome", "exc_type", "message"} records, one per test (under
pytest-xdist each worker writes its own file, named with the worker id appended).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Generator
from typing import Any

import pytest

REPORT_ENV = "LABKIT_REPORT"
MAX_MESSAGE = 4000  # characters kept of a failure message
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

_records: dict[str, dict[str, Any]] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    record = _records.setdefault(
        item.nodeid,
        {
            "nodeid": item.nodeid,
            "blocks": sorted(m.name for m in item.iter_markers() if m.name.startswith("block_")),
            "outcome": "passed",
            "exc_type": None,
            "message": "",
        },
    )
    # The first phase that does not pass decides: a setup or teardown failure is an "error".
    if record["outcome"] == "passed" and report.outcome != "passed":
        if report.outcome == "skipped":
            record["outcome"] = "skipped"
        else:
            record["outcome"] = "failed" if report.when == "call" else "error"
        if call.excinfo is not None:
            record["exc_type"] = call.excinfo.typename
            record["message"] = _message(call.excinfo.value)[:MAX_MESSAGE]
    return report


def _message(exc: BaseException) -> str:
    """The exception's text; for a notebook cell (nbval), with the error raised inside the cell."""
    text = str(exc)
    inner = getattr(exc, "inner_traceback", None)  # nbval's NbCellError keeps the cell's traceback
    if inner:
        text += "\n" + ANSI_ESCAPE.sub("", str(inner))
    return text


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get(REPORT_ENV)
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # under pytest-xdist, one file per worker
    if path and worker:
        path = f"{path}.{worker}"
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(list(_records.values()), fh, indent=1)
