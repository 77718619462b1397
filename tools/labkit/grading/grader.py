"""Grade one submission: points per block from the official tests, the type check and the notes.

Everything goes through labkit.core.overlay: the submission's lora.py (and nothing else of its code) is
read without being followed (labkit.grading.submission), checked against the lab's code rule without being
run (labkit.grading.rules), then overlaid on a pristine copy, where the graded tests, plus any hidden tests,
run in a separate, limited process, inside the sandbox (labkit.core.sandbox) unless the caller trusts
the code. Results are judged from outside that process (labkit.core.report.ReportReader). A test that
crashes its process or runs over its time limit costs that test only: the run goes on in a fresh
process with the tests that have not finished, within the submission's one time limit.
A submission that breaks the code rule, or whose report broke the protocol, is graded all the same
but "withheld for review": its points are not to be trusted before an instructor has looked.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

from labkit.core.labinfo import Block, Lab, load_lab
from labkit.core.overlay import (
    GRADED_TESTS,
    REFERENCE,
    Limits,
    TestOutcome,
    last_lines,
    overlaid_copy,
    python_path,
    run_limited,
    run_overlay,
)
from labkit.grading.measure import judge, parse_notes
from labkit.grading.rules import check_source
from labkit.grading.submission import (
    MAX_NOTES_BYTES,
    MAX_SOURCE_BYTES,
    Submission,
    read_text,
    said,
)

HIDDEN_DIR = "tests/hidden"  # where hidden tests go in the overlaid copy
DEFAULT_GRADER_SEED = 20261123  # not the students' 0: answers hard-coded for the public seed fail
DEFAULT_LIMITS = Limits(memory_mb=4096, output_mb=64, test_timeout_s=60)
#: A block's status (BlockGrade.status) as `check` and the feedback files show it.
STATUS_LABELS = {
    "en": {"done": "done", "failing": "failing", "not started": "not started", "crashed": "crashed"},
    "es": {"done": "terminado", "failing": "con fallos", "not started": "sin empezar", "crashed": "interrumpido"},
}
HANGS_PER_BLOCK = 2
HUNG_BLOCK = (
    f"not run: {HANGS_PER_BLOCK} tests of this block ran over their time limit and had to be stopped from "
    "outside the test process (the code ignored the timeout), so its other tests were not run"
)
UNSANDBOXED = said(
    "graded WITHOUT the sandbox (--no-sandbox): the submission could read and change anything the grader can",
    "calificada SIN el sandbox (--no-sandbox): la entrega podía leer y cambiar todo lo que puede el corrector",
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
    failures: list[TestResult] = field(default_factory=list)


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
    return {"en": text, "es": text}


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
    """(nodeid, marker) of every graded test, collected with the reference solution."""
    run = run_overlay(REFERENCE, tests=_test_paths(hidden), pytest_args=["--collect-only"], extra=_extra(hidden))
    tests = tuple((o.nodeid, o.blocks[0] if o.blocks else "") for o in run.outcomes)
    if not tests:
        raise RuntimeError(f"no graded test could be collected with the reference:\n{run.output}")
    return tests


def _test_paths(hidden: Path | None) -> tuple[str, ...]:
    return (GRADED_TESTS, HIDDEN_DIR) if hidden else (GRADED_TESTS,)


def _extra(hidden: Path | None) -> dict[str, Path]:
    return {HIDDEN_DIR: hidden} if hidden else {}


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
    typecheck_alongside: bool = False,
) -> Grade:
    """Grade one submission; sandbox=False only for code the caller trusts (a student's own check).

    progress, when given, is called as results come (see Progress). typecheck_alongside runs mypy
    at the same time as the tests (a student's check: its cold start does not add to the wait)
    rather than after them (the grader, which already runs submissions in parallel).
    """
    lab = load_lab()
    start = time.monotonic()
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
            mypy = _Background(lambda: _run_mypy(lora, lab, limits, mypy_cache, sandbox), typecheck_alongside)
            expected = expected_tests(hidden)
            reported: set[str] = set()
            outcomes, problem, evidence = _run_tests(lora, expected, seed, limits, time_limit, hidden, sandbox,
                                                     _block_progress(progress, lab, expected, reported))  # fmt: skip
            violations += [{"line": 0, "code": "report", "text": _evidence_text(e)} for e in evidence]
            any_passed = any(o.outcome == "passed" for o in outcomes.values())
            if progress is not None and not problem:  # the blocks whose tests did not all get a result
                final = _test_results(expected, outcomes, problem)
                for block in lab.blocks:
                    if block.id not in reported:
                        progress(block.id, _block_grade(block, expected, final))
            notes = _notes(lora, submission.notes, lab, limits, sandbox)
            typecheck = _typecheck(*mypy.result(), lab, any_passed)
            if progress is not None:
                progress("typecheck", typecheck)
                progress("notes", notes)
    tests = _test_results(expected, outcomes, problem)
    blocks = [_block_grade(block, expected, tests) for block in lab.blocks]
    notices = [] if sandbox else [UNSANDBOXED]
    return Grade(submission.name, blocks, typecheck, notes, problem, round(time.monotonic() - start, 1), tests,
                 violations, notices)  # fmt: skip


def _test_results(expected: Sequence[tuple[str, str]], outcomes: Mapping[str, TestOutcome],
                  problem: Mapping[str, str]) -> list[TestResult]:  # fmt: skip
    return [
        TestResult(
            nodeid.rpartition("::")[2],
            outcomes[nodeid].outcome if nodeid in outcomes else "not run",
            outcomes[nodeid].message if nodeid in outcomes else (problem.get("en") or "the test did not run"),
            outcomes[nodeid].exc_type if nodeid in outcomes else None,
        )
        for nodeid, _ in expected
    ]


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
                report(block.id, _block_grade(block, expected, _test_results(expected, outcomes, {})))

    return seen


class _Background:
    """A function run in a thread from now on (alongside=True), or when its result is asked for."""

    def __init__(self, function: Callable[[], tuple[int | None, str]], alongside: bool) -> None:
        self.function = function
        self.value: tuple[int | None, str] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True) if alongside else None
        if self.thread is not None:
            self.thread.start()

    def _run(self) -> None:
        try:
            self.value = self.function()
        except BaseException as exc:  # handed to the caller of result()
            self.error = exc

    def result(self) -> tuple[int | None, str]:
        if self.thread is None:
            self._run()
        else:
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
        return None, said(f"no lora.py found (looked for {lab.submission} and lora.py)",
                          f"no se encontró lora.py (se buscó {lab.submission} y lora.py)")  # fmt: skip
    return read_text(submission.lora, MAX_SOURCE_BYTES, "lora")


def _evidence_text(evidence: str) -> dict[str, str]:
    return {
        "en": f"the test process's report broke the grader's protocol ({evidence}): did the submission write it?",
        "es": f"el informe del proceso de tests rompió el protocolo del corrector ({evidence}): ¿lo escribió la entrega?",
    }


def _run_tests(
    lora: Path,
    expected: Sequence[tuple[str, str]],
    seed: int,
    limits: Limits,
    time_limit: float,
    hidden: Path | None,
    sandbox: bool,
    progress: Callable[[Mapping[str, TestOutcome]], None] | None = None,
) -> tuple[dict[str, TestOutcome], dict[str, str], list[str]]:
    """Outcomes by nodeid, the reason nothing ran (by language; empty if tests ran), and evidence of tampering.

    A run stopped by a crash or a hang is followed by a run of the tests that have not finished,
    the one that was running counted as failed, until every test has a result or the time is up.
    A block with a test that had to be stopped from outside (it ignored the in-process timeout)
    goes last, and after HANGS_PER_BLOCK such tests its others are not run: a submission that
    hangs that way costs its time limit once, not once per test.
    """
    deadline = time.monotonic() + time_limit
    env = {"MINITUNER_SEED": str(seed)}
    block_of = dict(expected)
    outcomes: dict[str, TestOutcome] = {}
    evidence: list[str] = []
    hangs: Counter[str] = Counter()

    def seen(results: Sequence[TestOutcome]) -> None:  # this run's results so far, with the earlier runs'
        if progress is not None:
            progress({**outcomes, **{o.nodeid: o for o in results if o.nodeid in block_of}})

    while (remaining := deadline - time.monotonic()) > 1:
        pending = [nodeid for nodeid in block_of if nodeid not in outcomes]
        now = [nodeid for nodeid in pending if not hangs[block_of[nodeid]]] or pending
        skip = [arg for nodeid in block_of if nodeid not in now for arg in ("--deselect", nodeid)]
        run = run_overlay(lora, tests=_test_paths(hidden), pytest_args=skip, env=env, timeout=remaining,
                          limits=limits, extra=_extra(hidden), sandbox=sandbox,
                          progress=seen if progress else None)  # fmt: skip
        evidence += run.evidence
        collection = [o for o in run.outcomes if o.exc_type == "CollectionError"]
        if collection:
            trace = last_lines(collection[0].message)
            return {}, said("the submission could not be imported:\n" + trace,
                            "no se pudo importar la entrega:\n" + trace), evidence  # fmt: skip
        if not outcomes and not any(o.nodeid in block_of for o in run.outcomes):
            code, tail = run.returncode, "\n" + last_lines(run.output)
            return {}, said(
                f"the test process ended (exit status {code}) before running any test: the submission probably "
                f"exits, or kills its process, when it is imported{tail}".rstrip(),
                f"el proceso de tests terminó (código de salida {code}) antes de ejecutar ningún test: seguramente "
                f"la entrega sale, o mata su proceso, al importarse{tail}".rstrip(),
            ), evidence
        finished = {o.nodeid: o for o in run.outcomes if o.nodeid in block_of and (o.outcome != "not run" or o.exc_type)}
        outcomes.update(finished)
        hangs.update(block_of[o.nodeid] for o in finished.values() if o.exc_type == "Timeout")
        for nodeid in pending:
            if nodeid not in outcomes and hangs[block_of[nodeid]] >= HANGS_PER_BLOCK:
                outcomes[nodeid] = TestOutcome(nodeid, (block_of[nodeid],), "not run", "Timeout", HUNG_BLOCK)
        if not finished or all(nodeid in outcomes for nodeid in block_of):
            break  # every test has its result, or the run made no progress
    return outcomes, {}, evidence


def _block_grade(block: Block, expected: Sequence[tuple[str, str]], tests: list[TestResult]) -> BlockGrade:
    mine = [t for (_, marker), t in zip(expected, tests, strict=True) if marker == block.marker]
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
    points = round(block.points * passed / len(mine), 2) if mine else 0.0
    return BlockGrade(block.id, block.title["en"], points, block.points, passed, len(mine), status, failures)


def _run_mypy(lora: Path, lab: Lab, limits: Limits, mypy_cache: Path | None, sandbox: bool) -> tuple[int | None, str]:
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


_NO_TEST_PASSES = {
    "en": "mypy --strict passes, but no graded test does yet: the type check counts from the first one",
    "es": "mypy --strict pasa, pero todavía ningún test evaluable: la comprobación de tipos cuenta desde el primero",
}


def _typecheck(code: int | None, output: str, lab: Lab, any_passed: bool) -> ItemGrade:
    # Typed stubs pass mypy: the type check counts only once some graded test passes.
    ok = code == 0 and any_passed
    detail = _NO_TEST_PASSES if code == 0 and not any_passed else _same(last_lines(output, 20))
    return _item(lab.typecheck.points if ok else 0.0, lab.typecheck.points, ok, detail)


def _notes(lora: Path, notes_path: Path | None, lab: Lab, limits: Limits, sandbox: bool) -> ItemGrade:
    if notes_path is None:
        return _item(0.0, lab.notes.points, False, {"en": f"no notes file ({lab.notes_path})",
                                                    "es": f"no hay archivo de notas ({lab.notes_path})"})  # fmt: skip
    text, problem = read_text(notes_path, MAX_NOTES_BYTES, "notes")
    if text is None:
        return _item(0.0, lab.notes.points, False, problem)
    with overlaid_copy(lora) as workdir:
        _, output = run_limited([sys.executable, "-m", "labkit.grading.measure"], cwd=workdir, env=_env(workdir, sandbox),
                                timeout=120, limits=_no_test_timeout(limits), sandbox=[] if sandbox else None)  # fmt: skip
    try:
        measured = json.loads(output.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        measured = {key: f"measuring crashed: {last_lines(output, 3)}" for key in lab.notes_keys}
    parsed = parse_notes(text, lab.notes_keys)
    judged = {lang: judge(parsed, measured, lab.notes_keys, lang) for lang in ("en", "es")}
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
    )
