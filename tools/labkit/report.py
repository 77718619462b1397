"""A pytest plugin that writes each test's outcome as JSON lines, for labkit.overlay.

Enabled with `-p labkit.report`; the file named by the LABKIT_REPORT environment variable receives
one {"nodeid", "blocks", "outcome", "exc_type", "message"} line per test phase, written as soon as
the phase ends, so a run that crashes or is killed keeps what it had done (the last line of a test
wins; under pytest-xdist each worker writes its own file, named with the worker id appended).
A module that cannot be collected (a submission that does not import) gives an "error" line whose
nodeid is the module's path.

The plugin also checks, after every test, that the functions the tests judge with (torch.allclose,
torch.equal, numpy's and pytest's comparisons) are still the ones that were there before the
submission was imported; a test that ran with a replaced one is an "error" that says so.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

REPORT_ENV = "LABKIT_REPORT"
MAX_MESSAGE = 4000  # characters kept of a failure message
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

_records: dict[str, dict[str, Any]] = {}


def _judges() -> dict[str, object]:
    import numpy as np
    import numpy.testing
    import torch
    import torch.testing

    return {
        "torch.allclose": torch.allclose,
        "torch.equal": torch.equal,
        "torch.isclose": torch.isclose,
        "torch.testing.assert_close": torch.testing.assert_close,
        "numpy.allclose": np.allclose,
        "numpy.array_equal": np.array_equal,
        "numpy.testing.assert_allclose": numpy.testing.assert_allclose,
        "pytest.approx": pytest.approx,
        "pytest.raises": pytest.raises,
        "pytest.fail": pytest.fail,
        "pytest.TestReport.from_item_and_call": vars(pytest.TestReport)["from_item_and_call"],
        "builtins.isinstance": isinstance,
    }


_ORIGINAL_JUDGES = _judges()


def _tampered() -> list[str]:
    current = _judges()
    return [name for name, original in _ORIGINAL_JUDGES.items() if current[name] is not original]


def _write(record: dict[str, Any]) -> None:
    path = os.environ.get(REPORT_ENV)
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # under pytest-xdist, one file per worker
    if not path:
        return
    with open(f"{path}.{worker}" if worker else path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    record = _records.setdefault(
        item.nodeid,
        {
            "nodeid": item.nodeid,
            "blocks": _blocks(item),
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
    tampered = _tampered()
    if tampered and record["outcome"] != "error":
        record["outcome"], record["exc_type"] = "error", "Tampering"
        record["message"] = (
            "the submission replaced " + ", ".join(tampered) + ", which the tests use to judge it; "
            "results obtained that way do not count"
        )
    _write(record)
    return report


def _message(exc: BaseException) -> str:
    """The exception's text; for a notebook cell (nbval), with the error raised inside the cell."""
    text = str(exc) or f"{type(exc).__name__} (with no message)"
    inner = getattr(exc, "inner_traceback", None)  # nbval's NbCellError keeps the cell's traceback
    if inner:
        text += "\n" + ANSI_ESCAPE.sub("", str(inner))
    return text


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        text = ANSI_ESCAPE.sub("", str(report.longrepr))
        _write({"nodeid": report.nodeid, "blocks": [], "outcome": "error", "exc_type": "CollectionError",
                "message": text[-MAX_MESSAGE:]})  # fmt: skip


def pytest_collection_finish(session: pytest.Session) -> None:
    # Every collected test starts as "not run": one that never finishes (its process crashed or
    # was killed) keeps that outcome.
    for item in session.items:
        _write({"nodeid": item.nodeid, "blocks": _blocks(item), "outcome": "not run", "exc_type": None,
                "message": "the test did not finish: its process crashed or was stopped"})  # fmt: skip


def _blocks(item: pytest.Item) -> list[str]:
    return sorted(m.name for m in item.iter_markers() if m.name.startswith("block_"))


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a run (all worker files), the last line of each test winning, in test order."""
    records: dict[str, dict[str, Any]] = {}
    for part in sorted(path.parent.glob(path.name + "*")):
        for line in part.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a killed process
            # Under xdist every worker collects every test but runs only some: a "not run" line
            # never replaces a result.
            known = records.get(record["nodeid"])
            if known is None or known["outcome"] == "not run" or record["outcome"] != "not run":
                records[record["nodeid"]] = record
    return list(records.values())
