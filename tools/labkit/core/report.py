"""The pytest plugin that reports each graded test, and the reader that judges its report from outside.

Enabled with `-p labkit.core.report`, the plugin appends JSON lines to the file named by LABKIT_REPORT
(under pytest-xdist each worker writes its own file, the worker id appended), as the run goes:

    {"kind": "collected", "tests": [{"nodeid": ..., "blocks": [...]}, ...]}   once, after collection
    {"kind": "start", "nodeid": ...}                                          as a test begins
    {"kind": "result", "nodeid", "blocks", "outcome", "exc_type", "message"}  once, as it ends
    {"kind": "collect_error", "nodeid", "message"}                            a module did not import
    {"kind": "end"}                                                           the session is over

The plugin runs only in processes that hold no submitted code: the judge when grading
(labkit.grading.judge, where the submission runs in a worker of its own), and the runs of code the
workbook vouches for (the reference, the stubs, the zoo, a student's own check, the notebooks).
`ReportReader` follows the file from outside while the run goes, for the progress and the time
limits, and accepts a line only where the protocol allows it (one result per collected test, for
the test that started last, before the end); a line that breaks it is kept as evidence of a bug.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPORT_ENV = "LABKIT_REPORT"
MAX_MESSAGE = 4000  # characters kept of a failure message
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


# ----------------------------------------------------------------------------- the plugin
_records: dict[str, dict[str, Any]] = {}
_phases: dict[str, set[str]] = {}  # the phases of each test that pytest reported


def _write(record: dict[str, Any]) -> None:
    path = os.environ.get(REPORT_ENV)
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # under pytest-xdist, one file per worker
    if not path:
        return
    with open(f"{path}.{worker}" if worker else path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    _write({"kind": "start", "nodeid": item.nodeid})
    _records[item.nodeid] = {"kind": "result", "nodeid": item.nodeid, "blocks": _blocks(item),
                             "outcome": "passed", "exc_type": None, "message": ""}  # fmt: skip
    _phases[item.nodeid] = set()
    try:
        return (yield)
    finally:
        record = _records[item.nodeid]
        # A test passes only on three reports, all passed: if pytest could not make one (a crash
        # while reporting, memory exhausted...), the test must not count as passed.
        if record["outcome"] == "passed" and _phases[item.nodeid] != {"setup", "call", "teardown"}:
            record.update(outcome="error", exc_type="Crash",
                          message="pytest could not finish reporting this test, so it does not count as passed")  # fmt: skip
        _write(record)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _phases[item.nodeid].add(report.when)
    record = _records[item.nodeid]
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
    text = str(exc) or f"{type(exc).__name__} (with no message)"
    inner = getattr(exc, "inner_traceback", None)  # nbval's NbCellError keeps the cell's traceback
    if inner:
        text += "\n" + ANSI_ESCAPE.sub("", str(inner))
    return text


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        text = ANSI_ESCAPE.sub("", str(report.longrepr))
        _write({"kind": "collect_error", "nodeid": report.nodeid, "message": text[-MAX_MESSAGE:]})


def pytest_collection_finish(session: pytest.Session) -> None:
    _write({"kind": "collected", "tests": [{"nodeid": item.nodeid, "blocks": _blocks(item)} for item in session.items]})


def pytest_sessionfinish(session: pytest.Session) -> None:
    _write({"kind": "end"})


def _blocks(item: pytest.Item) -> list[str]:
    return sorted(m.name for m in item.iter_markers() if m.name.startswith("block_"))


# ----------------------------------------------------------------------------- the reader
@dataclass
class _Stream:
    """What one report file (one process) said so far, under the protocol."""

    tests: dict[str, list[str]] = field(default_factory=dict)  # collected: nodeid -> blocks
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    collected: bool = False
    running: str | None = None
    started: float = 0.0
    ended: float | None = None
    offset: int = 0
    pending: bytes = b""


class ReportReader:
    """Follows a run's report file(s) from outside the test process, line by line, as they grow."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.streams: dict[Path, _Stream] = {}
        self.evidence: list[str] = []  # lines that broke the protocol: signs of tampering
        self.collect_errors: list[dict[str, Any]] = []

    def poll(self) -> None:
        """Read what the files gained since the last poll."""
        for part in sorted(self.path.parent.glob(self.path.name + "*")):
            stream = self.streams.setdefault(part, _Stream())
            try:
                with open(part, "rb") as fh:
                    size = fh.seek(0, os.SEEK_END)
                    if size < stream.offset:
                        self._evidence(f"{part.name} shrank from {stream.offset} to {size} bytes")
                        stream.offset = size
                    fh.seek(stream.offset)
                    data = stream.pending + fh.read()
                    stream.offset = fh.tell()
            except OSError:
                continue
            *lines, stream.pending = data.split(b"\n")
            for line in lines:
                self._take(stream, line)

    def _evidence(self, text: str) -> None:
        if len(self.evidence) < 20:
            self.evidence.append(text)

    def _take(self, stream: _Stream, line: bytes) -> None:
        try:
            record = json.loads(line)
            kind = record["kind"]
        except (ValueError, TypeError, KeyError):
            self._evidence(f"a line that is not a report record: {line[:120]!r}")
            return
        if stream.ended is not None:
            self._evidence(f"a {kind!r} record written after the run ended")
        elif kind == "collect_error" and not stream.collected:
            self.collect_errors.append(record)
        elif kind == "collected" and not stream.collected:
            stream.collected = True
            stream.tests = {t["nodeid"]: list(t["blocks"]) for t in record["tests"]}
        elif kind == "start" and stream.running is None and record.get("nodeid") in stream.tests and record["nodeid"] not in stream.results:
            stream.running, stream.started = record["nodeid"], time.monotonic()
        elif kind == "result" and record.get("nodeid") == stream.running and stream.running is not None:
            stream.results[stream.running] = {**record, "blocks": stream.tests[stream.running]}
            stream.running = None
        elif kind == "end":
            stream.ended = time.monotonic()
        else:
            self._evidence(f"a {kind!r} record out of place (for {str(record.get('nodeid'))[:100]!r})")

    def running(self) -> tuple[str, float] | None:
        """The test that has been running longest, and since when (time.monotonic)."""
        running = [(s.running, s.started) for s in self.streams.values() if s.running is not None]
        return min(running, key=lambda r: r[1]) if running else None

    def ended(self) -> float | None:
        """When the run ended (the main process's end record), or None."""
        main = self.streams.get(self.path)
        return main.ended if main is not None else None

    def tests(self) -> dict[str, list[str]]:
        """Every collected test (nodeid -> blocks), in collection order."""
        tests: dict[str, list[str]] = {}
        for stream in self.streams.values():
            tests.update(stream.tests)
        return tests

    def results(self) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        for stream in self.streams.values():
            results.update(stream.results)
        return results
