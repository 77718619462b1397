"""A pytest plugin that writes each test's outcome as JSON, for labkit.overlay.

Enabled with `-p labkit.report`; the file named by the LABKIT_REPORT environment variable receives
a list of {"nodeid", "blocks", "outcome", "exc_type", "message"} records, one per test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from typing import Any

import pytest

REPORT_ENV = "LABKIT_REPORT"
MAX_MESSAGE = 2000  # characters kept of a failure message

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
            record["message"] = str(call.excinfo.value)[:MAX_MESSAGE]
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(list(_records.values()), fh, indent=1)
