"""A class's grading survives faults: `grade` killed with SIGKILL and stopped with Ctrl-C halfway, resumed.

A real batch, graded by the `grade` command as an instructor runs it (sandboxed, two jobs), against
the gradebook of an uninterrupted run: after each fault only whole files remain, nothing the run
started is still running, the rerun grades only what was missing, and the gradebook ends equal.
Also here: a whole clone of the workbook handed in is graded as its lora.py alone, and one student
regraded into the class's folder changes that student's row only. (Bad merges: test_grading.)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit.core.overlay import REFERENCE, STUBS, WORKBOOK_ROOT
from labkit.core.sandbox import MARKER_ENV
from labkit.grading.examples import materialize

#: Examples that are graded in seconds and cover a full, a partial, a failing and an unimportable grade.
EXAMPLES = ("partial", "broken_d", "syntax_error")
JOBS = "2"
#: Seconds a stopped run may take to end (the issue: "within a few seconds").
STOP_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def classroom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six submissions: three examples, the stubs, the reference, and the reference in a whole clone."""
    examples = materialize(tmp_path_factory.mktemp("examples"))
    room = tmp_path_factory.mktemp("room") / "class"
    room.mkdir()
    for name in EXAMPLES:
        (entry,) = examples.glob(f"{name}*")
        (shutil.copytree if entry.is_dir() else shutil.copyfile)(entry, room / entry.name)
    shutil.copyfile(STUBS, room / "stubs.py")
    shutil.copyfile(REFERENCE, room / "reference.py")
    clone = room / "clone"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=WORKBOOK_ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, tracked.decode().split("\0")):
        source, target = WORKBOOK_ROOT / rel, clone / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))  # the workbook tracks a link: a clone has it too
        elif source.is_file():
            shutil.copyfile(source, target)
    shutil.copyfile(REFERENCE, clone / "src" / "minituner" / "lora.py")
    return room


def _grade(*args: str | Path, tmp: Path) -> subprocess.Popen[str]:
    """`grade` in its own session (as a terminal's job is), with its temporary files under tmp."""
    env = {**os.environ, "TMPDIR": str(tmp), "LANG": "C.UTF-8"}
    return subprocess.Popen([sys.executable, "-m", "labkit.grading.grade", *map(str, args), "--jobs", JOBS],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def _finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _results(out: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(out.glob("*/result.json"))}


def _wait_for_results(out: Path, proc: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + 300
    while len(_results(out)) < count:
        assert proc.poll() is None, f"grade ended before {count} results: {proc.communicate()}"
        assert time.monotonic() < deadline, "no results came"
        time.sleep(0.05)


def _left_processes(tmp: Path) -> list[str]:
    """Processes still alive that a run under tmp started (its TMPDIR), or that a sandbox started."""
    left = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            variables = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        if f"{MARKER_ENV}=1".encode() in variables or any(v.startswith(f"TMPDIR={tmp}".encode()) for v in variables):
            left.append(environ.parent.name)
    return left


def _whole_files_only(out: Path) -> None:
    for path in out.rglob("*"):
        assert not path.name.endswith(".tmp"), f"a half-written file is left: {path}"
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))  # a cut file would not parse


@pytest.fixture(scope="module")
def uninterrupted(classroom: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out, tmp = tmp_path_factory.mktemp("whole"), tmp_path_factory.mktemp("tmp-whole")
    code, stdout, stderr = _finish(_grade(classroom, "--out", out, tmp=tmp))
    assert code == 0, stderr
    return out


def _rows(out: Path) -> list[str]:
    return (out / "gradebook.csv").read_text(encoding="utf-8").splitlines()


def test_a_whole_clone_is_graded_as_its_lora_py(uninterrupted: Path) -> None:
    rows = {row.split(",")[0]: row.split(",", 1)[1] for row in _rows(uninterrupted)[1:]}
    assert len(rows) == 6 and rows["clone"] == rows["reference"], rows
    assert rows["reference"].split(",")[7] == "95"  # the blocks and the type check; no notes file


@pytest.mark.parametrize("fault", ["SIGKILL", "SIGINT"])
def test_a_stopped_class_resumes_where_it_stopped(fault: str, classroom: Path, uninterrupted: Path, tmp_path: Path) -> None:
    out, tmp = tmp_path / "grades", tmp_path / "tmp"
    tmp.mkdir()
    proc = _grade(classroom, "--out", out, tmp=tmp)
    _wait_for_results(out, proc, 2)
    stopped_at = time.monotonic()
    if fault == "SIGKILL":
        proc.kill()  # the grader alone, as the OOM killer would: what it started must die with it
        code, _, stderr = _finish(proc)
        assert code == -signal.SIGKILL
    else:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at a terminal: the whole foreground group
        time.sleep(0.3)
        with contextlib.suppress(ProcessLookupError):  # an impatient second one, if it is still stopping
            os.killpg(proc.pid, signal.SIGINT)
        code, _, stderr = _finish(proc, timeout=60)
        assert code == 130, stderr
        assert time.monotonic() - stopped_at < STOP_WITHIN_S, "the stopped run took too long to end"
        assert "Traceback" not in stderr, stderr
        assert "run the same command again" in stderr, stderr
        finished = len(_results(out))
        assert len(_rows(out)) == 1 + finished, "the gradebook of what was finished was not written"
    time.sleep(1)  # a process that outlived the run would still be here
    assert _left_processes(tmp) == [], f"processes of the stopped run are still running ({fault})"
    _whole_files_only(out)
    kept = _results(out)
    assert 2 <= len(kept) < 6, f"expected a run stopped halfway, found {len(kept)} results"
    left_folders = list(tmp.glob("labkit-grade-*"))
    assert bool(left_folders) == (fault == "SIGKILL"), left_folders  # Ctrl-C cleans up; a kill cannot

    code, stdout, stderr = _finish(_grade(classroom, "--out", out, tmp=tmp))
    assert code == 0, stderr
    assert f"{len(kept)} of 6 submissions already have a current result" in stdout, stdout
    assert f"graded {6 - len(kept)} of {6 - len(kept)} submission(s)" in stdout, stdout
    assert {name: _results(out)[name] for name in kept} == kept, "the rerun graded a finished submission again"
    assert list(tmp.glob("labkit-grade-*")) == [], "the killed run's temporary folder is still there"
    if fault == "SIGKILL":
        assert "removed 1 temporary folder(s) that killed runs left" in stderr, stderr
    assert _rows(out) == _rows(uninterrupted)


def test_one_student_regraded_keeps_every_other_row(classroom: Path, uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "grades"
    shutil.copytree(uninterrupted, out)
    before = _rows(out)
    code, stdout, stderr = _finish(_grade(classroom / "stubs.py", "--out", out, "--regrade", tmp=tmp_path))
    assert code == 0 and "graded 1 of 1 submission(s)" in stdout, stderr
    assert _rows(out) == before
    # A student no longer in the class is reported and left out, not silently kept.
    shutil.copytree(out / "stubs", out / "dropped")
    code, stdout, stderr = _finish(_grade(classroom, "--out", out, tmp=tmp_path))
    assert code == 0 and "6 of 6 submissions already have a current result" in stdout, stderr
    assert "not of this class and are left out of the gradebook: dropped" in stderr
    assert _rows(out) == before

