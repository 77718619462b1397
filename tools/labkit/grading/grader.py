"""Grade one submission: points per block from the official tests, the type check and the notes.

The submission's lora.py (and nothing else of its code) is read without being followed
(labkit.grading.submission) and checked against the lab's code rule without being run
(labkit.grading.rules). Then the graded tests, plus any hidden tests, run in the judge
(labkit.grading.judge), a pytest process of the grader's, in a pristine copy of the workbook
(labkit.core.overlay) that does not hold the submission: the judge sends every scenario to a worker
in the sandbox (labkit.core.worker, labkit.core.sandbox), the one process that imports the
submission, and checks what it observed. A scenario that crashes the worker or runs over its time
limit costs that test only. Unsandboxed (code the caller trusts: a student's own check), the judge
runs the scenarios itself. mypy runs alongside, in the sandbox too. A submission that breaks the
code rule, or whose worker broke the channel's protocol, is graded all the same but "withheld for
review": its points are not to be trusted before an instructor has looked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import io
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
import tokenize
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from labkit.core.labinfo import Block, Lab, load_lab
from labkit.core.overlay import (
    CANDIDATE_PATH,
    GRADED_TESTS,
    STUBS,
    WORKBOOK_ROOT,
    Limits,
    TestOutcome,
    last_lines,
    overlaid_copy,
    python_path,
    run_limited,
    run_overlay,
)
from labkit.grading.judge import JUDGE_ENV, JudgeConfig, JudgeRecord
from labkit.grading.measure import judge, parse_notes
from labkit.grading.points import score_block
from labkit.grading.rules import check_source
from labkit.grading.submission import (
    MAX_NOTES_BYTES,
    MAX_SOURCE_BYTES,
    Submission,
    read_text,
    said,
)
from minituner.i18n import LANGUAGES, N_, tr

HIDDEN_DIR = "tests/hidden"  # where hidden tests go in the judge's copy (never in the worker's)
HIDDEN_MESSAGE = N_("a hidden test of this block did not pass (hidden tests show their block and outcome only)")
DEFAULT_GRADER_SEED = 20261123  # not the students' 0: answers hard-coded for the public seed fail
DEFAULT_LIMITS = Limits(memory_mb=4096, output_mb=64, test_timeout_s=60)
#: A block's status (BlockGrade.status) as `check` and the feedback files show it (status_label).
STATUS_LABELS = {"done": N_("done"), "failing": N_("failing"), "not started": N_("not started"), "crashed": N_("crashed")}
#: The judge's address space (a pytest process with torch takes about 0.7 GB of it).
JUDGE_MEMORY_MB = 4096
#: Seconds the judge's own pytest may take past a test's limit (its checks; the worker's restart).
JUDGE_GRACE_S = 30.0
#: What the worker's copy holds besides the submission: the package it imports and the scenarios.
WORKER_FILES = ("src/minituner/__init__.py", "src/minituner/model.py", "tests/scenarios.py")
#: The judge's stand-in for lora.py: the judge never imports a submission, and this makes sure of it.
JUDGE_GUARD = 'raise ImportError("the judge never imports the submission: its scenarios run in the worker")\n'
#: The notes' detail when the submission's code could not be run: nothing to compare them with.
NOT_MEASURED = N_("not compared: the values are measured with your code, which could not be graded")
#: The notice of a grade made without the sandbox (Grade.notices holds it as said(UNSANDBOXED)).
UNSANDBOXED = N_(
    "graded WITHOUT the sandbox (--no-sandbox): the submission could read and change anything the grader can"
)


@dataclass
class TestResult:
    name: str
    outcome: str  # passed, failed, error, skipped, not run
    message: str
    exc_type: str | None = None


@dataclass
class BlockGrade:
    id: str
    title: str
    points: float
    max_points: float
    passed: int
    total: int
    status: str  # done, failing, not started, crashed
    failures: list[TestResult] = field(default_factory=list)  # in the order the feedback shows them
    rules_passed: int = 0  # rules: graded test functions, all cases together (labkit.grading.points)
    rules: int = 0
    broken: list[str] = field(default_factory=list)  # the ids of the invariants that failed here


@dataclass
class ItemGrade:
    """The type check or the notes file."""

    points: float
    max_points: float
    ok: bool
    detail: str  # in English
    details: dict[str, str] = field(default_factory=dict)  # by language, where it differs from detail

    def text(self, lang: str) -> str:
        """The detail in lang (results written before `details` existed have English only)."""
        return self.details.get(lang, self.detail)


def _item(points: float, max_points: float, ok: bool, detail: dict[str, str]) -> ItemGrade:
    """detail by language ({} when there is nothing to say yet)."""
    return ItemGrade(points, max_points, ok, detail.get("en", ""), detail)


def _same(text: str) -> dict[str, str]:
    return {lang: text for lang in LANGUAGES}


#: grade_submission's progress callback: (a block's id, its grade) as soon as each of its tests has
#: a result, then ("typecheck", ...) and ("notes", ...).
Progress = Callable[[str, BlockGrade | ItemGrade], None]


def failure_message(message: str, exc_type: str | None) -> str:
    """A failed test's own message, without pytest's assertion rewriting.

    For a plain `assert cond, msg` pytest's text is "msg\nassert ...\n + where ...": only msg is
    kept (the assert line, when there is no msg). Other exceptions' messages are kept whole.
    """
    if exc_type != "AssertionError":
        return message
    lines = message.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("assert ", "where ")) or line.lstrip().startswith("+ where"):
            kept = "\n".join(lines[:i]).strip()
            return kept or line.strip()[:300]
    return message


@dataclass
class Grade:
    name: str
    blocks: list[BlockGrade]
    typecheck: ItemGrade
    notes: ItemGrade
    problem: dict[str, str]  # why nothing could be graded, by language (empty when the tests ran)
    seconds: float
    tests: list[TestResult] = field(default_factory=list)
    #: Why the grade is withheld for review: {"line", "code", "text": {"en", "es"}} per finding.
    violations: list[dict[str, object]] = field(default_factory=list)
    notices: list[dict[str, str]] = field(default_factory=list)  # how it was graded, when not the usual way
    #: What produced this grade, to defend it later (see audit_record).
    audit: dict[str, object] = field(default_factory=dict)

    @property
    def withheld(self) -> bool:
        """Broke the lab's code rule or the report protocol: an instructor must review it."""
        return bool(self.violations)

    @property
    def points(self) -> float:
        return round(sum(b.points for b in self.blocks) + self.typecheck.points + self.notes.points, 2)

    @property
    def max_points(self) -> float:
        return sum(b.max_points for b in self.blocks) + self.typecheck.max_points + self.notes.max_points

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["points"], data["max_points"] = self.points, self.max_points
        return data


@cache
def expected_tests(hidden: Path | None = None) -> tuple[tuple[str, str], ...]:
    """(nodeid, marker) of every graded test, collected with the stubs.

    Collecting runs no test, so the stubs give the same tests as the reference (a maintainers' test
    checks it), and the student edition, which has no reference, collects them the same way.
    """
    run = run_overlay(STUBS, tests=_test_paths(hidden), pytest_args=["--collect-only"], extra=_extra(hidden))
    tests = tuple((o.nodeid, o.blocks[0] if o.blocks else "") for o in run.outcomes)
    if not tests:
        raise RuntimeError(f"no graded test could be collected with the reference:\n{run.output}")
    return tests


def _test_paths(hidden: Path | None) -> tuple[str, ...]:
    return (GRADED_TESTS, HIDDEN_DIR) if hidden else (GRADED_TESTS,)


def _extra(hidden: Path | None) -> dict[str, Path]:
    return {HIDDEN_DIR: hidden} if hidden else {}


def status_label(status: str, lang: str) -> str:
    """A block's status (BlockGrade.status) in lang."""
    return tr(lang, STATUS_LABELS[status])


def grade_submission(
    submission: Submission,
    *,
    seed: int = DEFAULT_GRADER_SEED,
    limits: Limits = DEFAULT_LIMITS,
    time_limit: float = 300.0,
    hidden: Path | None = None,
    mypy_cache: Path | None = None,
    sandbox: bool = True,
    progress: Progress | None = None,
    language: str = "en",
) -> Grade:
    """Grade one submission; sandbox=False only for code the caller trusts (a student's own check).

    progress, when given, is called as results come (see Progress). mypy runs at the same time as
    the tests: while the judge waits for its worker to import torch, its cold start costs nothing.
    The graded tests write their messages in language (minituner.i18n).
    """
    lab = load_lab()
    start, started = time.monotonic(), time.time()
    source, problem = _source(submission, lab)
    violations: list[dict[str, object]] = []
    outcomes: dict[str, TestOutcome] = {}
    typecheck = _item(0.0, lab.typecheck.points, False, problem)
    notes = _item(0.0, lab.notes.points, False, problem)
    if source is None:
        expected = expected_tests(hidden)
    else:
        violations = [asdict(v) for v in check_source(source)]
        with tempfile.TemporaryDirectory(prefix="labkit-submission-") as tmp:
            lora = Path(tmp) / "lora.py"
            lora.write_text(source, encoding="utf-8")
            mypy = _Background(lambda: run_mypy(lora, lab, limits, mypy_cache, sandbox))
            expected = expected_tests(hidden)
            reported: set[str] = set()
            outcomes, problem, record = _run_judge(
                lora, Path(tmp), seed, limits, time_limit, hidden, sandbox, submission.notes is not None,
                _block_progress(progress, lab, expected, reported), language,
            )  # fmt: skip
            violations += [{"line": 0, "code": "report", "text": _evidence_text(e)} for e in record.evidence]
            any_passed = any(o.outcome == "passed" for o in outcomes.values())
            if progress is not None and not problem:  # the blocks whose tests did not all get a result
                final = _test_results(expected, outcomes, problem, language)
                for block in lab.blocks:
                    if block.id not in reported:
                        progress(block.id, _block_grade(block, lab, expected, final))
            notes = _notes(record.notes, submission.notes, lab) if not problem else _item(0.0, lab.notes.points, False, said(NOT_MEASURED))
            typecheck = typecheck_item(*mypy.result(), lab, any_passed, typing_escapes(source))
            if progress is not None:
                progress("typecheck", typecheck)
                progress("notes", notes)
    tests = _test_results(expected, outcomes, problem, language)
    blocks = [_block_grade(block, lab, expected, tests) for block in lab.blocks]
    notices = [] if sandbox else [said(UNSANDBOXED)]
    seconds = round(time.monotonic() - start, 1)
    settings = grading_settings(seed=seed, limits=limits, time_limit=time_limit, hidden=hidden, sandbox=sandbox,
                                language=language)  # fmt: skip
    audit = audit_record(submission, settings=settings, started=started, seconds=seconds)
    return Grade(submission.name, blocks, typecheck, notes, problem, seconds, tests, violations, notices, audit)


def grading_settings(*, seed: int, limits: Limits, time_limit: float, hidden: Path | None, sandbox: bool,
                     language: str = "en") -> dict[str, object]:  # fmt: skip
    """What, besides the submission's files, decides a grade: two grades made with equal settings agree.

    language is that of the tests' messages, which a grade keeps (the feedback quotes them).
    """
    return {
        "workbook_commit": _workbook_commit(),
        "seed": seed,
        "hidden_tests_sha256": _tree_sha256(hidden),
        "limits": {**asdict(limits), "time_limit_s": time_limit, "sandbox": sandbox},
        "language": language,
    }


#: The keys of an audit record that grading_settings gives (the rest: the files' digests, when, how long).
SETTING_KEYS = ("workbook_commit", "seed", "hidden_tests_sha256", "limits", "language")


def audit_record(submission: Submission, *, settings: Mapping[str, object], started: float, seconds: float) -> dict[str, object]:
    """What produced a grade: the settings, the sha256 of the graded files, when and how long."""
    return {
        **settings,
        "lora_sha256": file_sha256(submission.lora),
        "notes_sha256": file_sha256(submission.notes),
        "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": seconds,
    }


@cache
def _workbook_commit() -> str:
    """The workbook's git commit; with "+ changes <digest>" when its tracked files differ from it; "unknown" outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=WORKBOOK_ROOT, capture_output=True, text=True, timeout=30,
                              check=True).stdout  # fmt: skip

    try:
        commit = git("rev-parse", "HEAD").strip()
        changes = git("diff", "HEAD", "--binary")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} + changes {hashlib.sha256(changes.encode()).hexdigest()[:12]}" if changes else commit


def file_sha256(path: Path | None) -> str | None:
    """The sha256 of a submission's file, read without following it (None when there is none or it cannot be read)."""
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        return hashlib.sha256(fh.read(MAX_SOURCE_BYTES + 1)).hexdigest()


def _tree_sha256(folder: Path | None) -> str | None:
    """One digest of a folder's files (their relative paths and contents), for the hidden tests."""
    if folder is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def grade_or_report(submission: Submission, *, seed: int = DEFAULT_GRADER_SEED, limits: Limits = DEFAULT_LIMITS,
                    time_limit: float = 300.0, hidden: Path | None = None, sandbox: bool = True,
                    language: str = "en", **options: Any) -> Grade:  # fmt: skip
    """grade_submission, except that an error of the grader's while grading it is this submission's grade.

    That grade is 0, withheld for review (violation code "grader"), with the error and the audit
    record: one submission never costs the class its gradebook, and the next run grades it again.
    """
    start, started = time.monotonic(), time.time()
    try:
        return grade_submission(submission, seed=seed, limits=limits, time_limit=time_limit, hidden=hidden,
                                sandbox=sandbox, language=language, **options)  # fmt: skip
    except Exception as exc:  # whatever went wrong, for this submission only
        lab = load_lab()
        why = f"{type(exc).__name__}: {str(exc)[:500]}"
        problem = said("the grader failed on this submission ({why})", why=why)
        blocks = [BlockGrade(b.id, b.title["en"], 0.0, b.points, 0, 0, "crashed") for b in lab.blocks]
        seconds = round(time.monotonic() - start, 1)
        audit: dict[str, object] = {}
        with contextlib.suppress(Exception):  # the audit of a grade the grader could not make is best effort
            settings = grading_settings(seed=seed, limits=limits, time_limit=time_limit, hidden=hidden, sandbox=sandbox,
                                        language=language)  # fmt: skip
            audit = audit_record(submission, settings=settings, started=started, seconds=seconds)
        return Grade(submission.name, blocks, _item(0.0, lab.typecheck.points, False, problem),
                     _item(0.0, lab.notes.points, False, problem), problem, seconds, [],
                     [{"line": 0, "code": "grader", "text": problem}], audit=audit)  # fmt: skip


def _test_results(expected: Sequence[tuple[str, str]], outcomes: Mapping[str, TestOutcome],
                  problem: Mapping[str, str], language: str = "en") -> list[TestResult]:  # fmt: skip
    """Every expected test's result, its message in language (a hidden test's: its outcome only)."""
    results = []
    hidden = 0
    for nodeid, _ in expected:
        outcome = outcomes.get(nodeid)
        result = TestResult(
            nodeid.rpartition("::")[2],
            outcome.outcome if outcome else "not run",
            outcome.message if outcome else (problem.get(language) or tr(language, "the test did not run")),
            outcome.exc_type if outcome else None,
        )
        if nodeid.startswith(HIDDEN_DIR + "/"):  # its block and outcome only: never its name or its text
            hidden += 1
            shown = tr(language, HIDDEN_MESSAGE) if result.outcome != "passed" else ""
            result = TestResult(f"hidden test {hidden}", result.outcome, shown, result.exc_type)
        results.append(result)
    return results


def _block_progress(
    progress: Progress | None, lab: Lab, expected: Sequence[tuple[str, str]], reported: set[str]
) -> Callable[[Mapping[str, TestOutcome]], None] | None:
    """Calls progress with each block, once, as soon as every test of the block has a result."""
    if progress is None:
        return None
    report = progress

    def seen(outcomes: Mapping[str, TestOutcome]) -> None:
        for block in lab.blocks:
            mine = [nodeid for nodeid, marker in expected if marker == block.marker]
            if block.id not in reported and all(n in outcomes and outcomes[n].outcome != "not run" for n in mine):
                reported.add(block.id)
                report(block.id, _block_grade(block, lab, expected, _test_results(expected, outcomes, {})))

    return seen


class _Background:
    """A function run in a thread from now on; result() waits for it."""

    def __init__(self, function: Callable[[], tuple[int | None, str]]) -> None:
        self.function = function
        self.value: tuple[int | None, str] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.value = self.function()
        except BaseException as exc:  # handed to the caller of result()
            self.error = exc

    def result(self) -> tuple[int | None, str]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


def _source(submission: Submission, lab: Lab) -> tuple[str | None, dict[str, str]]:
    """The submission's lora.py as text, or the problem that stops its grading (by language)."""
    if submission.problem:
        return None, submission.problem
    if submission.lora is None:
        return None, said("no lora.py found (looked for {submission} and lora.py)", submission=lab.submission)
    return read_text(submission.lora, MAX_SOURCE_BYTES, "lora")


def _evidence_text(evidence: str) -> dict[str, str]:
    return said("the process running the submission sent the judge what no scenario sends ({evidence}): "
                "did the submission write it?", evidence=evidence)  # fmt: skip


def _run_judge(
    lora: Path,
    tmp: Path,
    seed: int,
    limits: Limits,
    time_limit: float,
    hidden: Path | None,
    sandbox: bool,
    notes: bool,
    progress: Callable[[Mapping[str, TestOutcome]], None] | None = None,
    language: str = "en",
) -> tuple[dict[str, TestOutcome], dict[str, str], JudgeRecord]:
    """Outcomes by nodeid, the reason nothing could be graded (by language; empty if the tests ran), the judge's record.

    The graded tests (and hidden tests) run in the judge (labkit.grading.judge), a pytest process of
    the grader's that never imports the submission when sandboxed: it sends every scenario to a
    worker, in the sandbox, whose copy holds the submission, the package it imports and the
    scenarios, and nothing else (no tests, no hidden tests, no seed). Unsandboxed (code the caller
    trusts), the judge runs the scenarios itself. The limits are the judge's to enforce, per
    scenario and for the whole submission (time_limit).
    """
    record_path = tmp / "judge.json"
    config = JudgeConfig(
        record=str(record_path), notes=notes, memory_mb=limits.memory_mb, output_mb=limits.output_mb,
        test_timeout_s=limits.test_timeout_s, deadline=time.time() + time_limit, sandbox=sandbox,
    )  # fmt: skip
    candidate = lora
    if sandbox:
        worker_dir = tmp / "worker"
        for rel in WORKER_FILES:
            (worker_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (worker_dir / rel).write_bytes((WORKBOOK_ROOT / rel).read_bytes())
        (worker_dir / CANDIDATE_PATH).write_bytes(lora.read_bytes())
        candidate = tmp / "guard.py"
        candidate.write_text(JUDGE_GUARD, encoding="utf-8")
        config = dataclasses.replace(config, worker_dir=str(worker_dir))
    judge_limits = Limits(
        # The judge's own memory is bounded too, whatever the worker sends (a check that broadcasts, say).
        memory_mb=JUDGE_MEMORY_MB if sandbox else limits.memory_mb,
        test_timeout_s=None if limits.test_timeout_s is None else limits.test_timeout_s + JUDGE_GRACE_S,
    )
    run = run_overlay(
        candidate, tests=_test_paths(hidden), pytest_args=["-p", "labkit.grading.judge"],
        env={"MINITUNER_SEED": str(seed), JUDGE_ENV: json.dumps(dataclasses.asdict(config)), "LANGUAGE": language},
        timeout=time_limit + JUDGE_GRACE_S, limits=judge_limits, extra=_extra(hidden),
        progress=(lambda results: progress({o.nodeid: o for o in results})) if progress else None,
    )  # fmt: skip
    try:
        record = JudgeRecord(**json.loads(record_path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        record = JudgeRecord()
        return {}, said("the grader's judge did not finish:\n{output}", output=last_lines(run.output)), record
    if record.import_error is not None:
        return {}, said("the submission could not be imported:\n{error}", error=record.import_error), record
    collection = [o for o in run.outcomes if o.exc_type == "CollectionError"]
    if collection:
        trace = last_lines(collection[0].message)
        return {}, said("the graded tests could not be collected:\n{trace}", trace=trace), record
    return {o.nodeid: o for o in run.outcomes}, {}, record


def _block_grade(block: Block, lab: Lab, expected: Sequence[tuple[str, str]], tests: list[TestResult]) -> BlockGrade:
    cases = [(nodeid, t) for (nodeid, marker), t in zip(expected, tests, strict=True) if marker == block.marker]
    mine = [t for _, t in cases]
    passed = sum(t.outcome == "passed" for t in mine)
    failures = [t for t in mine if t.outcome != "passed"]
    if not failures:
        status = "done"
    elif passed == 0 and all(t.exc_type == "NotImplementedError" for t in failures):
        status = "not started"
    elif any(t.outcome == "not run" for t in failures):
        status = "crashed"
    else:
        status = "failing"
    score = score_block(block, lab, [(nodeid, t.outcome == "passed", t.exc_type) for nodeid, t in cases])
    return BlockGrade(block.id, block.title["en"], score.points, block.points, passed, len(mine), status,
                      [mine[i] for i in score.shown], score.rules_passed, score.rules,
                      [inv.id for inv in score.broken])  # fmt: skip


class MypyCaches:
    """One mypy cache per concurrent job, under base: two mypy processes must never share one, as mypy's
    cache is not safe for concurrent runs (python/mypy#14521, #21136); a crashed mypy would cost a
    correct submission its type check. Each cache is kept between the jobs' runs, so mypy starts
    cold once per job."""

    def __init__(self, base: Path, jobs: int) -> None:
        self._free: queue.Queue[Path] = queue.Queue()
        for job in range(1, max(1, jobs) + 1):
            cache = base / f"job-{job}"
            cache.mkdir(parents=True, exist_ok=True)
            self._free.put(cache)

    @contextlib.contextmanager
    def held(self) -> Iterator[Path]:
        """A cache that no other job uses until this one gives it back."""
        cache = self._free.get()
        try:
            yield cache
        finally:
            self._free.put(cache)


def run_mypy(lora: Path, lab: Lab, limits: Limits, mypy_cache: Path | None, sandbox: bool) -> tuple[int | None, str]:
    """mypy --strict on lora.py in an overlaid copy: (exit status, output)."""
    with overlaid_copy(lora) as workdir:
        cache_args = ["--cache-dir", str(mypy_cache)] if mypy_cache else []
        writable = ([mypy_cache] if mypy_cache else []) if sandbox else None
        command = [sys.executable, "-m", *lab.typecheck_command, *cache_args, lab.submission]
        return run_limited(command, cwd=workdir, env=_env(workdir, sandbox), timeout=240,
                           limits=_no_test_timeout(limits), sandbox=writable)  # fmt: skip


def _env(workdir: Path, sandbox: bool) -> dict[str, str]:
    env = {"PYTHONPATH": python_path(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
    return env if sandbox else {**os.environ, **env}


_NO_TEST_PASSES = N_("mypy --strict passes, but no graded test does yet: the type check counts from the first one")


def typing_escapes(source: str) -> list[dict[str, str]]:
    """What in source switches mypy off: each `# mypy:` comment and `# type: ignore`, as a sentence by language.

    Each one costs the type check: it counts real typing only.
    """
    found: list[dict[str, str]] = []
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT]
    except (tokenize.TokenError, SyntaxError):
        return found  # mypy reports the syntax error itself
    for token in tokens:
        body = token.string.lstrip("#").strip()
        line, comment = token.start[0], token.string[:60]
        if body.startswith("mypy:"):
            found.append(said("line {line}: `{comment}`: inline mypy configuration is not allowed: the type check "
                              "runs with the workbook's settings only", line=line, comment=comment))  # fmt: skip
        elif re.match(r"type:\s*ignore", body):
            found.append(said("line {line}: `{comment}`: a `# type: ignore` hides what mypy found there, so the type "
                              "check does not count; type the line instead (annotations, or typing.cast for torch's "
                              "untyped calls)", line=line, comment=comment))  # fmt: skip
    return found


def typecheck_item(code: int | None, output: str, lab: Lab, any_passed: bool, escapes: Sequence[dict[str, str]]) -> ItemGrade:
    # Typed stubs pass mypy: the type check counts only once some graded test passes.
    ok = code == 0 and any_passed and not escapes
    if escapes:
        detail = {lang: "\n".join(e[lang] for e in escapes) for lang in LANGUAGES}
    else:
        detail = said(_NO_TEST_PASSES) if code == 0 and not any_passed else _same(last_lines(output, 20))
    return _item(lab.typecheck.points if ok else 0.0, lab.typecheck.points, ok, detail)


def _notes(measured: Mapping[str, object], notes_path: Path | None, lab: Lab) -> ItemGrade:
    """The notes file judged against what the judge measured with the submission's code."""
    if notes_path is None:
        return _item(0.0, lab.notes.points, False, said("no notes file ({path})", path=lab.notes_path))
    text, problem = read_text(notes_path, MAX_NOTES_BYTES, "notes")
    if text is None:
        return _item(0.0, lab.notes.points, False, problem)
    parsed = parse_notes(text, lab.notes_keys)
    judged = {lang: judge(parsed, measured, lab.notes_keys, lang) for lang in LANGUAGES}
    good = sum(not problem for problem, _ in judged["en"].values())
    detail = {lang: "\n".join(f"{k}: {line}" for k, (_, line) in j.items()) for lang, j in judged.items()}
    points = round(lab.notes.points * good / len(lab.notes_keys), 2)
    return _item(points, lab.notes.points, good == len(lab.notes_keys), detail)


def _no_test_timeout(limits: Limits) -> Limits:
    return Limits(limits.memory_mb, limits.output_mb, None)


def grade_from_json(data: Mapping[str, object]) -> Grade:
    """The inverse of Grade.to_json, for merging shards."""
    d = dict(data)
    blocks = [
        BlockGrade(**{**b, "failures": [TestResult(**t) for t in b["failures"]]})
        for b in d["blocks"]  # type: ignore[attr-defined]
    ]
    return Grade(
        name=str(d["name"]),
        blocks=blocks,
        typecheck=ItemGrade(**d["typecheck"]),  # type: ignore[arg-type]
        notes=ItemGrade(**d["notes"]),  # type: ignore[arg-type]
        problem=_same(d["problem"]) if isinstance(d["problem"], str) and d["problem"] else dict(d["problem"] or {}),  # type: ignore[call-overload]
        seconds=float(d["seconds"]),  # type: ignore[arg-type]
        tests=[TestResult(**t) for t in d["tests"]],  # type: ignore[attr-defined]
        violations=list(d.get("violations", [])),  # type: ignore[call-overload]
        notices=[_same(n) if isinstance(n, str) else dict(n) for n in d.get("notices", [])],  # type: ignore[attr-defined]
        audit=dict(d.get("audit") or {}),  # type: ignore[call-overload]
    )
