"""The one mechanism of the workbook: run the official graded tests on a candidate lora.py.

A pristine copy of the workbook (its packaging, conftest.py, src/minituner, tests/ and the lab's
notebooks in labs/) is made in a temporary directory, the candidate replaces src/minituner/lora.py
there, and pytest runs the graded tests (or, for labkit.content.notebooks, nbval) in a fresh process.
Nothing else of the candidate's is used: not its tests, not its conftest.
The reference solution, the student stubs, the bug zoo and students' submissions all go through here;
students' submissions run inside the sandbox (labkit.core.sandbox), and every run is judged from outside
its process (labkit.core.report.ReportReader).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from labkit.core.leftovers import die_with_parent
from labkit.core.report import REPORT_ENV, ReportReader
from labkit.core.sandbox import sandboxed

WORKBOOK_ROOT = Path(__file__).resolve().parents[3]
#: What a pristine copy holds, relative to the workbook root.
PRISTINE_PATHS = ("pyproject.toml", "conftest.py", "src/minituner", "tests", "labs")
#: Where the candidate goes in the copy.
CANDIDATE_PATH = "src/minituner/lora.py"
REFERENCE = WORKBOOK_ROOT / "solutions" / "lora.py"  # the reference solution
STUBS = WORKBOOK_ROOT / CANDIDATE_PATH  # the student stubs, as committed
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
    returncode: int | None  # None when the run was stopped from outside; < 0 when killed by a signal
    output: str  # the tail of pytest's stdout and stderr
    evidence: tuple[str, ...] = ()  # report lines that broke the protocol: signs of tampering
    lingered: bool = False  # the process outlived its session and was stopped

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
    test_timeout_s: float | None = None  # per test: pytest-timeout inside, the same plus a grace outside


#: Seconds a test may run past its limit before the process is stopped from outside (pytest-timeout,
#: inside, gets the first chance to stop it with a traceback), and seconds the process may live on
#: after its session ended (a thread or child of the submission keeping it alive).
OUTSIDE_GRACE_S = 5.0
LINGER_S = 3.0
POLL_S = 0.1
#: Whether unsandboxed runs go to the fork server: on Linux only (macOS frameworks are not fork-safe).
FORK_SERVER = sys.platform == "linux"
#: The variables a sandboxed run inherits from the grader's environment; nothing else (no tokens).
SANDBOX_ENV_KEEP = ("LANGUAGE", "LANG", "LC_ALL", "LC_MESSAGES", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


#: Set by a runner that is being stopped (a grader's Ctrl-C): every supervised run ends at once.
STOP = threading.Event()


def sandbox_env(env: Mapping[str, str]) -> dict[str, str]:
    """A sandboxed run's environment: env plus a few harmless variables of the grader's (SANDBOX_ENV_KEEP)."""
    keep = {k: os.environ[k] for k in SANDBOX_ENV_KEEP if k in os.environ}
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", **keep, **env}


def limit_resources(limits: Limits) -> Callable[[], None]:
    """A preexec_fn that applies limits.memory_mb and limits.output_mb to the child (test_timeout_s is the caller's).

    The child is also killed when the thread that started it ends (leftovers.die_with_parent).
    """

    parent = os.getpid()

    def apply() -> None:  # runs in the child, between fork and exec
        die_with_parent(parent)  # a grader killed with SIGKILL takes its runs with it
        if limits.memory_mb is not None:
            size = limits.memory_mb * 2**20
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if limits.output_mb is not None:
            size = limits.output_mb * 2**20
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def run_limited(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    limits: Limits = Limits(),
    sandbox: Sequence[Path] | None = None,
    watch: Callable[[], str | None] | None = None,
) -> tuple[int | None, str]:
    """Run command in its own session under limits; (returncode or None when stopped, output tail).

    sandbox, when given, runs it inside bubblewrap (labkit.core.sandbox) with cwd and those paths as the
    only writable ones, and an environment of env plus a few harmless variables of the grader's.
    watch is called as the process runs; a non-empty answer stops it, and is added to the output.
    Output goes to a file (never to memory), capped by limits.output_mb; when the process ends or
    is stopped, its whole process group is killed, so its children do not outlive it (inside the
    sandbox, every process it started dies with it, whatever session it made).
    """
    run_env = dict(env)
    if sandbox is not None:
        command = sandboxed(command, workdir=cwd, writable=sandbox)
        run_env = sandbox_env(env)
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            command, cwd=cwd, env=run_env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=limit_resources(limits),
        )  # fmt: skip
        return _supervise(proc.pid, lambda: proc.poll() is None, proc.wait, out, timeout, watch)


def _supervise(
    pid: int,
    running: Callable[[], bool],
    reap: Callable[[], int],
    out: IO[bytes],
    timeout: float,
    watch: Callable[[], str | None] | None,
) -> tuple[int | None, str]:
    """Both runners' watch over a started run: (returncode or None when stopped, output tail).

    Polls watch and the deadline while running(); then kills pid's whole session (pid leads it),
    reaps it, and reads the tail of out, with why it was stopped or the signal that killed it.
    """
    deadline = time.monotonic() + timeout
    reason = ""
    try:
        while running():
            reason = (watch() if watch else None) or ""
            if STOP.is_set():
                reason = "stopped: the run was interrupted"
            if not reason and time.monotonic() > deadline:
                reason = f"stopped after {timeout:g} s"
            if reason:
                break
            time.sleep(POLL_S)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        returncode = reap()
    size = out.seek(0, os.SEEK_END)
    out.seek(max(0, size - OUTPUT_TAIL))
    output = out.read().decode("utf-8", errors="replace")
    if reason:
        return None, output + f"\n[{reason}]"
    if returncode < 0:
        output += f"\n[killed by signal {signal.Signals(-returncode).name}]"
    return returncode, output


def run_forked(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    limits: Limits = Limits(),
    watch: Callable[[], str | None] | None = None,
) -> tuple[int | None, str]:
    """run_limited's twin for `python -m pytest ...` of a trusted candidate: a child of the fork server.

    The same contract: (returncode or None when stopped, output tail), judged by watch from outside,
    the child's whole session killed when it ends or is stopped.
    """
    from labkit.core.forkserver import server

    warm = server()
    with tempfile.NamedTemporaryFile(prefix="labkit-forked-") as out:
        pid = warm.start(command, cwd=str(cwd), env=env, output=out.name,
                         memory_mb=limits.memory_mb, output_mb=limits.output_mb)  # fmt: skip
        return _supervise(pid, lambda: _alive(pid), warm.wait, out, timeout, watch)


def _alive(pid: int) -> bool:
    """Whether the fork server's child pid still runs (the server reaps it as soon as it ends)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def python_path(workdir: Path) -> str:
    """PYTHONPATH that makes the copy's minituner win in every process, notebook kernels included."""
    return os.pathsep.join(filter(None, [str(workdir / "src"), os.environ.get("PYTHONPATH")]))


#: Heavy plugins, and the option that means a run needs each: a run gets `-p NAME` where its
#: arguments hold the option and `-p no:NAME` elsewhere. nbval costs ~1.7 s of imports at every pytest
#: start (nbformat, whose jsonschema builds a grammar) and xdist ~0.2 s. pyproject's addopts already
#: block nbval (`-p no:nbval`); the `-p nbval` given here comes later on the command line and unblocks it.
OPTIONAL_PLUGINS = {"nbval": "--nbval", "xdist": "-n"}


def _unused_plugins_off(pytest_args: Sequence[str]) -> list[str]:
    """`-p no:NAME` for each optional plugin the run does not need, `-p NAME` for each it needs."""
    return [arg for name, flag in OPTIONAL_PLUGINS.items()
            for arg in ("-p", name if flag in pytest_args else f"no:{name}")]  # fmt: skip


class _Watch:
    """Judges a run from outside its process: per-test time limit, end of the session."""

    def __init__(
        self,
        reader: ReportReader,
        test_timeout_s: float | None,
        progress: Callable[[tuple[TestOutcome, ...]], None] | None = None,
    ) -> None:
        self.reader = reader
        self.limit = None if test_timeout_s is None else test_timeout_s + OUTSIDE_GRACE_S
        self.stopped: str | None = None  # the test stopped at its time limit
        self.lingered = False
        self.progress = progress
        self.reported = 0  # results handed to progress so far

    def report(self) -> None:
        """Hand the results read so far to progress, when there are new ones."""
        if self.progress is None:
            return
        results = self.reader.results()
        if len(results) != self.reported:
            self.reported = len(results)
            self.progress(tuple(_outcome(record) for record in results.values()))

    def __call__(self) -> str | None:
        self.reader.poll()
        self.report()
        running = self.reader.running()
        now = time.monotonic()
        if self.limit is not None and running is not None and now - running[1] > self.limit:
            self.stopped = running[0]
            return f"{running[0]} ran over {self.limit:g} s and was stopped from outside the test process"
        ended = self.reader.ended()
        if ended is not None and now - ended > LINGER_S:
            self.lingered = True
            return f"the test process lived on {LINGER_S:g} s after its tests ended, and was stopped"
        return None


def run_overlay(
    candidate: Path,
    *,
    tests: Sequence[str] = (GRADED_TESTS,),
    pytest_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
    limits: Limits = Limits(),
    extra: Mapping[str, Path] | None = None,
    sandbox: bool = False,
    progress: Callable[[tuple[TestOutcome, ...]], None] | None = None,
) -> OverlayRun:
    """Run the graded tests (or other tests of the copy) with candidate as src/minituner/lora.py.

    tests are the paths pytest collects, relative to the copy; pytest_args are added to its
    command line (for example ["-m", "block_a"]); env adds environment variables (for example
    MINITUNER_SEED); timeout bounds the whole run, limits each test and the process; extra adds
    files to the copy (see overlaid_copy). The runner is chosen here, and only here: with sandbox
    (submitted code), a fresh process inside bubblewrap; without (code its runner vouches for: the
    reference, the stubs, the zoo's variants, a student's own check, `grade --no-sandbox`), a child
    of the fork server (labkit.core.forkserver), which has torch and pytest imported already. Where
    fork is not safe to use after importing torch (anything but Linux), a fresh process instead.
    The report is read from outside as the run goes (labkit.core.report.ReportReader): a test over its
    time limit is stopped even if it ignores signals, and a process that outlives its session is
    ended. progress, when given, is called with the tests' results so far each time there are new
    ones, as the run goes (from the same reader, so only results that kept to the protocol).
    """
    with overlaid_copy(candidate, extra) as workdir:
        report_dir = workdir.parent / "report"
        report_dir.mkdir()
        reader = ReportReader(report_dir / "report.jsonl")
        timeout_args = [] if limits.test_timeout_s is None else [f"--timeout={limits.test_timeout_s:g}"]
        command = [
            sys.executable, "-m", "pytest", *tests, "-q", "--tb=short",
            "-p", "labkit.core.report", "-p", "no:cacheprovider", *_unused_plugins_off(pytest_args),
            "--rootdir", str(workdir), *timeout_args, *pytest_args,
        ]  # fmt: skip
        base_env = {} if sandbox else os.environ
        run_env = {
            **base_env,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": python_path(workdir),
            **(env or {}),
            REPORT_ENV: str(reader.path),
        }
        watch = _Watch(reader, limits.test_timeout_s, progress)
        if not sandbox and FORK_SERVER:
            returncode, output = run_forked(command, cwd=workdir, env=run_env, timeout=timeout, limits=limits,
                                            watch=watch)  # fmt: skip
        else:
            returncode, output = run_limited(
                command, cwd=workdir, env=run_env, timeout=timeout, limits=limits,
                sandbox=[report_dir] if sandbox else None, watch=watch,
            )  # fmt: skip
        reader.poll()
        watch.report()
    return _overlay_run(candidate, reader, watch, returncode, output)


def _overlay_run(candidate: Path, reader: ReportReader, watch: _Watch, returncode: int | None, output: str) -> OverlayRun:
    results = reader.results()
    running = reader.running()
    outcomes = [
        TestOutcome(e["nodeid"], (), "error", "CollectionError", e["message"]) for e in reader.collect_errors
    ]
    for nodeid, blocks in reader.tests().items():
        if nodeid in results:
            outcomes.append(_outcome(results[nodeid]))
        elif nodeid == watch.stopped:
            message = (f"Timeout: the test ran over its time limit and was stopped from outside the test process "
                       f"(an endless loop, or a wait that ignores signals?)\n{last_lines(output)}")  # fmt: skip
            outcomes.append(TestOutcome(nodeid, tuple(blocks), "failed", "Timeout", message))
        elif running is not None and nodeid == running[0]:
            why = "stopped at the time limit" if returncode is None else f"died (exit status {returncode})"
            message = f"the test process {why} while running this test:\n{last_lines(output)}"
            outcomes.append(TestOutcome(nodeid, tuple(blocks), "not run", "Crash", message))
        else:
            outcomes.append(TestOutcome(nodeid, tuple(blocks), "not run", None, "the test did not run"))
    return OverlayRun(candidate, tuple(outcomes), returncode, output, tuple(reader.evidence), watch.lingered)


def _outcome(record: Mapping[str, Any]) -> TestOutcome:
    """A result record that the ReportReader accepted, as a TestOutcome."""
    return TestOutcome(record["nodeid"], tuple(record["blocks"]), record["outcome"], record["exc_type"], record["message"])


def last_lines(text: str, n: int = 8) -> str:
    """The last n lines of text, each cut at 300 characters."""
    return "\n".join(line[:300] for line in text.strip().splitlines()[-n:])


def import_file(path: Path, name: str) -> ModuleType:
    """The Python file at path, imported as a module called name, outside sys.modules.

    For the reference or a candidate lora.py (bench, docs checks) and the notebook sources: nothing
    in the student's package or the import cache is touched.
    """
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
