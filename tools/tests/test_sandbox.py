"""What the grader's defences stop, each on its own: the sandbox, reading submissions, the report protocol.

The example submissions (test_grading.py) attack all of them at once, as a class would; these tests
show each layer doing its part, so that a regression names the layer that broke.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labkit.core import sandbox
from labkit.core.labinfo import load_lab
from labkit.core.overlay import REFERENCE, STUBS, WORKBOOK_ROOT, Limits, run_limited
from labkit.core.report import ReportReader
from labkit.grading import grade as grade_cli
from labkit.grading.grader import UNSANDBOXED, grade_submission
from labkit.grading.submission import MAX_SOURCE_BYTES, find_submission, said

LIMITS = Limits(memory_mb=4096, output_mb=64, test_timeout_s=10)

#: Run inside the sandbox: prints what it can reach, then leaves a grandchild in a new session behind.
PROBE = """
import json, os, socket, sys, time
seen = {
    "solutions": os.path.exists(sys.argv[1] + "/solutions/lora.py"),
    "conftest": os.path.exists(sys.argv[1] + "/conftest.py"),
    "class": os.path.exists(sys.argv[2]),
    "processes": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "uid": os.getuid(),
}
for target in sys.argv[1:3]:  # whatever this does, it must not reach the real directories
    try:
        open(target + "/labkit-was-here", "w").close()
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", 22), timeout=1)
    seen["network"] = True
except OSError:
    seen["network"] = False
print(json.dumps(seen), flush=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(60)
    os._exit(0)
"""


def test_sandbox_hides_the_workbook_the_class_and_the_grader(tmp_path: Path) -> None:
    classmates = tmp_path / "class" / "alice"
    classmates.mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    (work / "probe.py").write_text(PROBE, encoding="utf-8")
    probe = work / "probe.py"  # a unique path: pgrep below finds this run's processes only
    command = [sys.executable, str(probe), str(WORKBOOK_ROOT), str(classmates)]
    code, output = run_limited(command, cwd=work, env={}, timeout=60, sandbox=[])
    assert code == 0, output
    seen = json.loads(output.strip().splitlines()[-1])
    assert seen == {
        "solutions": False, "conftest": False, "class": False, "network": False,
        "processes": seen["processes"], "uid": 65534,
    }  # fmt: skip
    assert max(seen["processes"]) < 10, f"the sandbox sees other processes: {seen['processes']}"
    assert not (WORKBOOK_ROOT / "labkit-was-here").exists() and not (classmates / "labkit-was-here").exists()
    time.sleep(0.5)
    leftover = subprocess.run(["pgrep", "-f", str(probe)], capture_output=True, text=True, check=False)
    assert leftover.stdout == "", "a process started in the sandbox outlived it"


def test_without_bwrap_grade_refuses_and_says_how_to_fix(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox.probe.cache_clear()
    try:
        assert grade_cli.main([str(STUBS), "--out", "/nonexistent"]) == 2
    finally:
        sandbox.probe.cache_clear()
    err = capsys.readouterr().err
    assert "apt-get install bubblewrap" in err and "--no-sandbox" in err


def test_no_sandbox_is_recorded_in_every_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "not_utf8.py"  # a submission that needs no test run: quick
    bad.write_bytes(b"x = '\xff'\n")
    assert grade_cli.main([str(bad), "--out", str(tmp_path / "out"), "--no-sandbox"]) == 0
    assert "WARNING" in capsys.readouterr().err
    result = json.loads((tmp_path / "out" / "not_utf8" / "result.json").read_text(encoding="utf-8"))
    assert result["notices"] == [said(UNSANDBOXED)] and said(UNSANDBOXED)["es"] != UNSANDBOXED
    assert UNSANDBOXED in (tmp_path / "out" / "gradebook.csv").read_text(encoding="utf-8")


def _submission_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "student" / "src" / "minituner"
    folder.mkdir(parents=True)
    return tmp_path / "student"


@pytest.mark.parametrize("case", ["symlink", "symlink-inside", "symlinked-dir", "directory", "not-utf8", "too-big", "fifo"])
def test_submissions_are_read_never_followed(tmp_path: Path, case: str) -> None:
    lab = load_lab()
    student = _submission_dir(tmp_path)
    lora = student / lab.submission
    expected = {
        "symlink": "symbolic link", "symlink-inside": "symbolic link", "symlinked-dir": "symbolic link",
        "directory": "is a directory", "not-utf8": "not UTF-8", "too-big": "larger than", "fifo": "not a regular file",
    }[case]  # fmt: skip
    path = student
    if case == "symlink":
        path = tmp_path / "alias.py"
        path.symlink_to(REFERENCE)
    elif case == "symlink-inside":
        lora.symlink_to(REFERENCE)
    elif case == "symlinked-dir":
        (student / "src" / "minituner").rmdir()
        (student / "src" / "minituner").symlink_to(REFERENCE.parent, target_is_directory=True)
    elif case == "directory":
        lora.mkdir()
    elif case == "not-utf8":
        lora.write_bytes(b"# caf\xe9\n")
    elif case == "too-big":
        lora.write_text("#" * (MAX_SOURCE_BYTES + 1), encoding="utf-8")
    else:
        import os

        os.mkfifo(lora)  # reading it would block forever
    grade = grade_submission(find_submission(path, lab), limits=LIMITS)
    assert grade.points == 0 and expected in grade.problem["en"], grade.problem
    assert grade.problem["es"] and grade.problem["es"] != grade.problem["en"], "every problem is said in Spanish too"


def _write_report(path: Path, *records: object) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        for record in records:
            fh.write((record if isinstance(record, str) else json.dumps(record)) + "\n")


def _result(nodeid: str, outcome: str = "passed") -> dict[str, object]:
    return {"kind": "result", "nodeid": nodeid, "blocks": ["block_a"], "outcome": outcome, "exc_type": None, "message": ""}


def test_report_reader_keeps_to_the_protocol(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    reader = ReportReader(path)
    tests = [{"nodeid": f"t::{n}", "blocks": ["block_a"]} for n in ("a", "b", "c")]
    _write_report(path, _result("t::a"), {"kind": "collected", "tests": tests})  # a result before collection
    _write_report(path, {"kind": "start", "nodeid": "t::a"}, _result("t::a", "failed"), _result("t::a"))
    _write_report(path, _result("t::b"), {"kind": "start", "nodeid": "t::zzz"}, {"kind": "end"})
    _write_report(path, _result("t::c"), "not json")
    reader.poll()
    assert {n: r["outcome"] for n, r in reader.results().items()} == {"t::a": "failed"}
    assert list(reader.tests()) == ["t::a", "t::b", "t::c"]
    assert len(reader.evidence) == 6 and "after the run ended" in reader.evidence[-2]
    path.write_text("", encoding="utf-8")  # rewritten from the start
    reader.poll()
    assert "shrank" in reader.evidence[-1]


def test_report_reader_follows_a_growing_file(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    reader = ReportReader(path)
    _write_report(path, {"kind": "collected", "tests": [{"nodeid": "t::a", "blocks": []}]})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"kind": "start", "nod')  # a line cut in the middle: kept until it is whole
    reader.poll()
    assert reader.running() is None
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('eid": "t::a"}\n')
    reader.poll()
    running = reader.running()
    assert running is not None and running[0] == "t::a" and reader.evidence == []


def test_a_test_whose_report_cannot_be_made_does_not_pass(tmp_path: Path) -> None:
    # A hook that fails while pytest makes the call phase's report stands for pytest itself failing
    # there (memory exhausted by the submission, say): the plugin must not leave the test "passed".
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.hookimpl(wrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    report = yield\n    if call.when == 'call':\n        raise MemoryError('no memory left to report')\n"
        "    return report\n",
        encoding="utf-8",
    )
    (tmp_path / "test_one.py").write_text("def test_fine():\n    assert True\n", encoding="utf-8")
    report = tmp_path / "report.jsonl"
    env = {**os.environ, "LABKIT_REPORT": str(report)}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "labkit.core.report", "-p", "no:cacheprovider", str(tmp_path)],
                   cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    reader = ReportReader(report)
    reader.poll()
    (result,) = reader.results().values()
    assert (result["outcome"], result["exc_type"]) == ("error", "Crash"), result
