"""The judge: a pytest plugin that runs the graded tests' checks and sends their scenarios elsewhere.

`grade` and `check` run the graded tests with `-p labkit.grading.judge` and LABKIT_JUDGE set to a
JSON object (JudgeConfig). The tests call the submission only through conftest's `observe`
fixture, which hands each call to this plugin (observe). With a worker directory, the plugin
never imports the submission: it starts one worker (labkit.core.worker) there, inside the sandbox
unless told otherwise, and sends it each scenario over a pipe (labkit.core.channel); the checks run
here, on what the worker observed. Without one (code its runner trusts: a student's own check),
the scenarios run here, in this process, as in a plain pytest.

Every limit is enforced from here: a scenario that runs past its test's time limit, or kills its
worker, fails alone, and the next scenario gets a fresh worker; after HANGS_PER_BLOCK timeouts in a
block its other scenarios are not run; after the submission's deadline none is. A frame that
breaks the channel's protocol fails its scenario and is kept as evidence. At the end of the session
the notes measurement runs the same way (labkit.grading.measure), and the plugin writes its record
(JudgeRecord) to the file the grader named: a file in the grader's own directory, which no worker
can reach.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest

from labkit.core.channel import ChannelClosed, ChannelError, ChannelTimeout, receive, send
from labkit.core.overlay import Limits, limit_resources, sandbox_env
from labkit.core.sandbox import LABKIT_DIR, sandboxed
from labkit.core.seccomp import program_fd
from labkit.core.worker import import_problem
from minituner.i18n import N_, _

JUDGE_ENV = "LABKIT_JUDGE"
HANGS_PER_BLOCK = 2
#: The failure of a block's tests once HANGS_PER_BLOCK of its scenarios have hung ({count}: that number).
HUNG_BLOCK = N_("not run: {count} scenarios of this block ran over their time limit and had to be stopped, "
                "so its other tests were not run")  # fmt: skip
#: Why a frame broke the protocol (kept in English as evidence; shown translated in the failure).
NOT_A_GREETING = N_("a first frame that is not the worker's greeting: {frame}")
NOT_AN_ANSWER = N_("an answer that is neither an observation nor an exception: {frame}")
STARTUP_S = 120.0  # seconds a worker may take to import torch and the submission
MAX_EVIDENCE = 5  # broken frames kept as evidence (one is enough to withhold)
STDERR_TAIL = 2000  # characters of a dead worker's stderr quoted in its test's failure


@dataclass(frozen=True)
class JudgeConfig:
    """What the grader tells the judge (as JSON in LABKIT_JUDGE)."""

    record: str  # where the judge writes its JudgeRecord
    worker_dir: str | None = None  # the worker's copy (src/minituner, tests/scenarios.py); None: run here
    sandbox: bool = True  # the worker inside bubblewrap
    memory_mb: int | None = None  # the worker's address space
    output_mb: int | None = None  # the largest file the worker may write, its stderr included
    test_timeout_s: float | None = None  # per test, for its scenarios
    deadline: float | None = None  # time.time() after which no scenario starts
    notes: bool = True  # measure the notes file's values at the end


@dataclass
class JudgeRecord:
    """What the judge saw of the submission, besides the tests' own results."""

    import_error: str | None = None  # the submission did not import (or ended while importing)
    evidence: list[str] = field(default_factory=list)  # frames that broke the channel's protocol
    notes: dict[str, Any] = field(default_factory=dict)  # the measured notes values (labkit.grading.measure)
    workers: int = 0  # worker processes started


class Timeout(Exception):
    """A scenario ran over its time limit (or could not start before the submission's deadline)."""


class Crash(Exception):
    """The worker died while running a scenario."""


class ProtocolError(Exception):
    """The worker's answer broke the channel's protocol."""


class SubmissionImportError(Exception):
    """The submission could not be imported, so no scenario can run."""


class _Worker:
    """One worker process and its channel."""

    def __init__(self, config: JudgeConfig) -> None:
        assert config.worker_dir is not None
        workdir = Path(config.worker_dir)
        command = [sys.executable, "-m", "labkit.core.worker"]
        env = {
            # labkit from the folder the sandbox binds (an editable install may point elsewhere).
            "PYTHONPATH": os.pathsep.join([str(workdir / "src"), str(workdir / "tests"), str(LABKIT_DIR.parent)]),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        # Sandboxed, the worker can write nothing anywhere and start no process (threads only).
        seccomp_fd = program_fd() if config.sandbox else None
        if config.sandbox:
            command = sandboxed(command, workdir=workdir, read_only=True, seccomp_fd=seccomp_fd)
            env = sandbox_env(env)
        else:
            env = {**os.environ, **env}
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        try:
            self.proc = subprocess.Popen(
                command, cwd=workdir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                start_new_session=True, preexec_fn=limit_resources(Limits(config.memory_mb, config.output_mb)),
                pass_fds=() if seccomp_fd is None else (seccomp_fd,),
            )  # fmt: skip
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.write_fd, self.read_fd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self.greeted = False  # its first frame (the submission imported) has been read

    def call(self, request: dict[str, Any], deadline: float) -> Any:
        send(self.write_fd, request)
        return receive(self.read_fd, deadline)

    def hello(self, deadline: float) -> Any:
        return receive(self.read_fd, deadline)

    def stop(self) -> str:
        """Kill the worker's whole session; how it ended and what it wrote to stderr (last lines first cut).

        Said in the environment's language (minituner.i18n): it goes into a test's failure.
        """
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        size = self.stderr.seek(0, os.SEEK_END)
        self.stderr.seek(max(0, size - STDERR_TAIL))
        tail = self.stderr.read().decode("utf-8", errors="replace").strip()
        self.stderr.close()
        if code >= 0:
            status = _("exit status {code}").format(code=code)
        else:
            status = _("killed by {signal}").format(signal=signal.Signals(-code).name)
        if not tail:
            return f"({status})"
        # i18n: {status} is how the process ended ("exit status 1", "killed by SIGKILL"); {output}, its last lines
        return _("({status}); its last output:\n{output}").format(status=status, output=tail)


class Judge:
    """The plugin's state for one session: the worker, the time limits, the hangs, the record.

    What fails a test (a Timeout, a Crash, a ProtocolError) is said in the environment's language,
    which the grader sets (LANGUAGE) to that of the feedback; the evidence is kept in English.
    """

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self.record = JudgeRecord()
        self.worker: _Worker | None = None
        self.hangs: Counter[str] = Counter()
        self.test_started = time.monotonic()

    def observe(self, block: str, name: str, inputs: dict[str, Any], seed: int) -> dict[str, Any]:
        """What scenario name observed on inputs, for a test of block: run here, or by the worker (see the module)."""
        if self.record.import_error is not None:
            raise SubmissionImportError(self.record.import_error)
        if self.config.worker_dir is None:
            return self._here(name, inputs, seed)
        if self.hangs[block] >= HANGS_PER_BLOCK:
            raise Timeout(_(HUNG_BLOCK).format(count=HANGS_PER_BLOCK))
        deadline = self._deadline()
        worker = self._worker(deadline)
        try:
            reply = worker.call({"scenario": name, "inputs": inputs, "seed": seed}, deadline)
        except ChannelTimeout:
            self._stop()
            self.hangs[block] += 1
            raise Timeout(_("Timeout: the scenario {scenario} ran over its time limit and its process was stopped "
                            "(an endless loop, or a wait that ignores signals?)").format(scenario=name)) from None
        except ChannelClosed:
            why = self._stop()
            # i18n: {why} is how the process ended, and its last output: "(exit status 1); its last output: ..."
            raise Crash(_("the process running your code died during the scenario {scenario} {why}").format(
                scenario=name, why=why)) from None  # fmt: skip
        except ChannelError as exc:
            self._broken(name, str(exc))
        return self._answer(name, reply)

    def _here(self, name: str, inputs: dict[str, Any], seed: int) -> dict[str, Any]:
        """The scenario run in this process (trusted code only), the submission imported first."""
        import scenarios

        try:
            import minituner.lora  # noqa: F401 - trusted code: a student's own check, the workbook's own
        except Exception as exc:
            self.record.import_error = import_problem(exc)
            raise SubmissionImportError(self.record.import_error) from None
        return scenarios.run(name, inputs, seed)

    def _deadline(self) -> float:
        """When the running test's scenarios must have answered (time.monotonic)."""
        deadline = float("inf")
        if self.config.test_timeout_s is not None:
            deadline = self.test_started + self.config.test_timeout_s
        if self.config.deadline is not None:
            deadline = min(deadline, time.monotonic() + self.config.deadline - time.time())
        if deadline <= time.monotonic():
            raise Timeout(_("Timeout: no time was left for this test (the submission's time limit ran out)"))
        return deadline

    def start(self) -> None:
        """Start a worker now, while pytest collects, if this judge uses one (its greeting is read later)."""
        if self.config.worker_dir is not None and self.worker is None:
            self.worker = _Worker(self.config)
            self.record.workers += 1

    def _worker(self, deadline: float) -> _Worker:
        """The running worker, or a new one, once it has said that it imported the submission."""
        self.start()
        worker = self.worker
        assert worker is not None
        if worker.greeted:
            return worker
        try:
            hello = worker.hello(min(deadline, time.monotonic() + STARTUP_S))
        except ChannelTimeout:
            self._stop()
            raise Timeout(_("Timeout: importing your lora.py did not finish before the time limit")) from None
        except ChannelClosed:
            why = self._stop()
            # i18n: {why} is how the process ended, and its last output: "(exit status 1); its last output: ..."
            self.record.import_error = _("the process ended while importing the submission {why}").format(why=why)
            raise SubmissionImportError(self.record.import_error) from None
        except ChannelError as exc:
            self._broken("its greeting", str(exc))
        if type(hello) is dict and type(hello.get("import_error")) is str:
            self._stop()
            self.record.import_error = hello["import_error"]
            raise SubmissionImportError(self.record.import_error)
        if hello != {"ready": True}:
            self._broken("its greeting", NOT_A_GREETING, frame=str(hello)[:100])
        worker.greeted = True
        return worker

    def _broken(self, name: str, why: str, **fields: str) -> NoReturn:
        """Stop the worker, keep why as evidence, and fail the scenario name.

        why is the channel's own error, or (with fields) one of the messages above, formatted with them:
        the evidence keeps it in English, the failure says it in the environment's language.
        """
        self._stop()
        self._evidence(f"{name}: {why.format(**fields) if fields else why}")
        shown = _(why).format(**fields) if fields else why
        raise ProtocolError(_("the process running your code broke the grader's protocol ({why})").format(why=shown))

    def _answer(self, name: str, reply: Any) -> dict[str, Any]:
        """The observation in reply, or the scenario's exception raised again here."""
        if type(reply) is dict and set(reply) == {"observed"} and type(reply["observed"]) is dict:
            observed: dict[str, Any] = reply["observed"]
            return observed
        raised = reply.get("raised") if type(reply) is dict and set(reply) == {"raised"} else None
        if type(raised) is dict and type(raised.get("type")) is str and type(raised.get("message")) is str:
            raise _exception(raised["type"], raised["message"])
        self._broken(name, NOT_AN_ANSWER, frame=str(reply)[:100])

    def _evidence(self, text: str) -> None:
        if len(self.record.evidence) < MAX_EVIDENCE:
            self.record.evidence.append(text[:300])

    def _stop(self) -> str:
        worker, self.worker = self.worker, None
        return worker.stop() if worker is not None else ""

    def measure_notes(self) -> None:
        """The notes file's values, measured with the submission's code through the same observe."""
        from labkit.grading.measure import measure

        if self.record.import_error is not None:
            return
        self.test_started = time.monotonic()
        self.record.notes = measure(lambda name, inputs, seed: self.observe("", name, inputs, seed))  # no block

    def finish(self) -> None:
        self._stop()
        path = Path(self.config.record)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self.record)), encoding="utf-8")
        temporary.replace(path)


def _exception(type_name: str, message: str) -> Exception:
    """The worker's exception as one of this process's: a built-in exception of that name, else RuntimeError."""
    kind = getattr(builtins, type_name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and not issubclass(kind, OSError):
        return kind(message)
    return RuntimeError(f"{type_name}: {message}")


def _block(node: Any) -> str:
    markers = sorted(m.name for m in node.iter_markers() if m.name.startswith("block_"))
    return markers[0] if markers else ""


_judge: list[Judge] = []  # the session's Judge, once configured


def observe(request: pytest.FixtureRequest, name: str, inputs: dict[str, Any], seed: int) -> dict[str, Any]:
    """conftest's observe fixture hands every call here when this plugin is loaded."""
    return _judge[0].observe(_block(request.node), name, inputs, seed)


def pytest_configure(config: pytest.Config) -> None:
    raw = os.environ.get(JUDGE_ENV)
    if raw is None:
        raise pytest.UsageError(f"-p labkit.grading.judge needs {JUDGE_ENV} (a JudgeConfig as JSON)")
    _judge.append(Judge(JudgeConfig(**json.loads(raw))))


def pytest_sessionstart(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        _judge[0].start()  # the worker imports torch and the submission while pytest collects


def pytest_runtest_setup(item: pytest.Item) -> None:
    _judge[0].test_started = time.monotonic()


def pytest_sessionfinish(session: pytest.Session) -> None:
    judge = _judge[0]
    try:
        if judge.config.notes and not session.config.option.collectonly:
            judge.measure_notes()
    finally:
        judge.finish()
