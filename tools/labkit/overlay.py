"""The one mechanism of the workbook: run the official graded tests on a candidate lora.py.

A pristine copy of the workbook (its packaging, conftest.py, src/minituner, tests/ and the lab's
notebooks in labs/) is made in a temporary directory, the candidate replaces src/minituner/lora.py
there, and pytest runs the graded tests (or, for labkit.notebooks, nbval) in a fresh process.
Nothing else of the candidate's is used: not its tests, not its conftest.
The reference solution, the student stubs, the bug zoo and students' submissions all go through here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from labkit.report import REPORT_ENV

WORKBOOK_ROOT = Path(__file__).resolve().parents[2]
#: What a pristine copy holds, relative to the workbook root.
PRISTINE_PATHS = ("pyproject.toml", "conftest.py", "src/minituner", "tests", "labs")
#: Where the candidate goes in the copy.
CANDIDATE_PATH = "src/minituner/lora.py"
GRADED_TESTS = "tests/test_minituner.py"
OUTPUT_TAIL = 20_000  # characters of pytest's output kept


@dataclass(frozen=True)
class TestOutcome:
    """One graded test's result: outcome is "passed", "failed", "error" or "skipped"."""

    nodeid: str
    blocks: tuple[str, ...]
    outcome: str
    exc_type: str | None
    message: str

    @property
    def name(self) -> str:
        return self.nodeid.rpartition("::")[2]


@dataclass(frozen=True)
class OverlayRun:
    """The result of running the graded tests on one candidate."""

    candidate: Path
    outcomes: tuple[TestOutcome, ...]
    returncode: int | None  # None when the run was stopped by the timeout
    output: str  # the tail of pytest's stdout and stderr

    @property
    def passed(self) -> list[TestOutcome]:
        return [o for o in self.outcomes if o.outcome == "passed"]

    @property
    def not_passed(self) -> list[TestOutcome]:
        return [o for o in self.outcomes if o.outcome != "passed"]


def pristine_copy(dest: Path, root: Path = WORKBOOK_ROOT) -> Path:
    """Copy the parts of the workbook the graded tests need into dest (created); return dest."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for rel in PRISTINE_PATHS:
        src, dst = root / rel, dest / rel
        if src.is_dir():
            shutil.copytree(src, dst, ignore=ignore)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    return dest


@contextmanager
def overlaid_copy(candidate: Path) -> Iterator[Path]:
    """A pristine copy of the workbook in a temporary directory, with candidate as its lora.py.

    The copy is at <tmp>/workbook; <tmp> itself is free for the caller's files.
    """
    candidate = Path(candidate).resolve()
    if not candidate.is_file():
        raise FileNotFoundError(f"candidate {candidate} is not a file")
    with tempfile.TemporaryDirectory(prefix="labkit-overlay-") as tmp:
        workdir = pristine_copy(Path(tmp) / "workbook")
        shutil.copyfile(candidate, workdir / CANDIDATE_PATH)
        yield workdir


def python_path(workdir: Path) -> str:
    """PYTHONPATH that makes the copy's minituner win in every process, notebook kernels included."""
    return os.pathsep.join(filter(None, [str(workdir / "src"), os.environ.get("PYTHONPATH")]))


#: Heavy plugins of the development environment, and the option that means a run needs each:
#: nbval costs ~0.7 s and xdist ~0.2 s of imports at every pytest start, so they stay off otherwise.
OPTIONAL_PLUGINS = {"nbval": "--nbval", "xdist": "-n"}


def _unused_plugins_off(pytest_args: Sequence[str]) -> list[str]:
    return [arg for name, flag in OPTIONAL_PLUGINS.items() if flag not in pytest_args
            for arg in ("-p", f"no:{name}")]  # fmt: skip


def run_overlay(
    candidate: Path,
    *,
    tests: Sequence[str] = (GRADED_TESTS,),
    pytest_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> OverlayRun:
    """Run the graded tests (or other tests of the copy) with candidate as src/minituner/lora.py.

    tests are the paths pytest collects, relative to the copy; pytest_args are added to its
    command line (for example ["-m", "block_a"]); env adds environment variables (for example
    MINITUNER_SEED).
    """
    with overlaid_copy(candidate) as workdir:
        report = workdir.parent / "report.json"
        command = [
            sys.executable, "-m", "pytest", *tests, "-q", "--tb=short",
            "-p", "labkit.report", "-p", "no:cacheprovider", *_unused_plugins_off(pytest_args),
            "--rootdir", str(workdir), *pytest_args,
        ]  # fmt: skip
        run_env = {
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": python_path(workdir),
            **(env or {}),
            REPORT_ENV: str(report),
        }
        try:
            proc = subprocess.run(
                command, cwd=workdir, env=run_env, capture_output=True, text=True,
                timeout=timeout, check=False,
            )  # fmt: skip
            returncode: int | None = proc.returncode
            output = proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            returncode = None
            output = f"{exc.stdout or ''}{exc.stderr or ''}\n[stopped after {timeout} s]"
        records = [
            record
            for path in sorted(report.parent.glob(report.name + "*"))  # one per xdist worker
            for record in json.loads(path.read_text(encoding="utf-8"))
        ]
    outcomes = tuple(
        TestOutcome(r["nodeid"], tuple(r["blocks"]), r["outcome"], r["exc_type"], r["message"])
        for r in records
    )
    return OverlayRun(candidate, outcomes, returncode, output[-OUTPUT_TAIL:])
