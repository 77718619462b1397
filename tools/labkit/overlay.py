"""The one mechanism of the workbook: run the official graded tests on a candidate lora.py.

A pristine copy of the workbook (its packaging, conftest.py, src/minituner, tests/ and the lab's
notebooks in labs/) is made in a temporary directory, the candidate replaces src/minituner/lora.py
there, and pytest runs the graded tests (or, for labkit.notebooks, nbval) in a fresh process.
Nothing else of the candidate's is used: not its tests, not its conftest.
The reference solution, the student stubs, the bug zoo and students' submissions all go through here.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from labkit.report import REPORT_ENV, read_records

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
    returncode: int | None  # None when the run was stopped by the timeout; < 0 when killed by a signal
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
def overlaid_copy(candidate: Path, extra: Mapping[str, Path] | None = None) -> Iterator[Path]:
    """A pristine copy of the workbook in a temporary directory, with candidate as its lora.py.

    extra maps paths in the copy to files or directories to put there (an instructor's hidden
    tests, for instance). The copy is at <tmp>/workbook; <tmp> itself is free for the caller's files.
    """
    candidate = Path(candidate).resolve()
    if not candidate.is_file():
        raise FileNotFoundError(f"candidate {candidate} is not a file")
    with tempfile.TemporaryDirectory(prefix="labkit-overlay-") as tmp:
        workdir = pristine_copy(Path(tmp) / "workbook")
        shutil.copyfile(candidate, workdir / CANDIDATE_PATH)
        for rel, source in (extra or {}).items():
            target = workdir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if Path(source).is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(source, target)
        yield workdir


@dataclass(frozen=True)
class Limits:
    """What one test process may use. None means no limit."""

    memory_mb: int | None = None  # address space (RLIMIT_AS)
    output_mb: int | None = None  # size of any file it writes, its captured output included
    test_timeout_s: float | None = None  # per test (pytest-timeout)


def _limit_resources(limits: Limits) -> Callable[[], None]:
    def apply() -> None:  # runs in the child, between fork and exec
        if limits.memory_mb is not None:
            size = limits.memory_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if limits.output_mb is not None:
            size = limits.output_mb * 2**20
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def run_limited(
    command: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float, limits: Limits = Limits()
) -> tuple[int | None, str]:
    """Run command in its own process group under limits; (returncode or None on timeout, output tail).

    Output goes to a file (never to memory), capped by limits.output_mb; on timeout the whole group
    is killed, so a submission's child processes do not outlive it.
    """
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            command, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_limit_resources(limits),
        )  # fmt: skip
        try:
            returncode: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        size = out.seek(0, os.SEEK_END)
        out.seek(max(0, size - OUTPUT_TAIL))
        output = out.read().decode("utf-8", errors="replace")
    if returncode is None:
        output += f"\n[stopped after {timeout:g} s]"
    elif returncode < 0:
        output += f"\n[killed by signal {signal.Signals(-returncode).name}]"
    return returncode, output


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
    limits: Limits = Limits(),
    extra: Mapping[str, Path] | None = None,
) -> OverlayRun:
    """Run the graded tests (or other tests of the copy) with candidate as src/minituner/lora.py.

    tests are the paths pytest collects, relative to the copy; pytest_args are added to its
    command line (for example ["-m", "block_a"]); env adds environment variables (for example
    MINITUNER_SEED); timeout bounds the whole run, limits each test and the process; extra adds
    files to the copy (see overlaid_copy).
    """
    with overlaid_copy(candidate, extra) as workdir:
        report = workdir.parent / "report.jsonl"
        timeout_args = [] if limits.test_timeout_s is None else [f"--timeout={limits.test_timeout_s:g}"]
        command = [
            sys.executable, "-m", "pytest", *tests, "-q", "--tb=short",
            "-p", "labkit.report", "-p", "no:cacheprovider", *_unused_plugins_off(pytest_args),
            "--rootdir", str(workdir), *timeout_args, *pytest_args,
        ]  # fmt: skip
        run_env = {
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": python_path(workdir),
            **(env or {}),
            REPORT_ENV: str(report),
        }
        returncode, output = run_limited(command, cwd=workdir, env=run_env, timeout=timeout, limits=limits)
        records = read_records(report)
    outcomes = tuple(
        TestOutcome(r["nodeid"], tuple(r["blocks"]), r["outcome"], r["exc_type"], r["message"])
        for r in records
    )
    return OverlayRun(candidate, outcomes, returncode, output)
