"""Grade one submission: points per block from the official tests, the type check and the notes.

Everything goes through labkit.overlay: the submission's lora.py (and nothing else of its code) is
overlaid on a pristine copy, and the graded tests, plus any hidden tests, run there in a separate,
limited process. A run that crashes or hangs is re-run block by block, so that a block that kills
its process costs that block only.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

from labkit.labinfo import Block, Lab, load_lab
from labkit.measure import compare, parse_notes
from labkit.overlay import (
    GRADED_TESTS,
    Limits,
    OverlayRun,
    TestOutcome,
    overlaid_copy,
    python_path,
    run_limited,
    run_overlay,
)
from labkit.verify import REFERENCE

HIDDEN_DIR = "tests/hidden"  # where hidden tests go in the overlaid copy
DEFAULT_GRADER_SEED = 20261123  # not the students' 0: answers hard-coded for the public seed fail
DEFAULT_LIMITS = Limits(memory_mb=4096, output_mb=64, test_timeout_s=60)
#: A block's status (BlockGrade.status) as `check` and the feedback files show it.
STATUS_LABELS = {
    "en": {"done": "done", "failing": "failing", "not started": "not started", "crashed": "crashed"},
    "es": {"done": "hecho", "failing": "con fallos", "not started": "sin empezar", "crashed": "se colgó o cayó"},
}


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
    detail: str


@dataclass
class Grade:
    name: str
    blocks: list[BlockGrade]
    typecheck: ItemGrade
    notes: ItemGrade
    problem: str  # why nothing could be graded ("" when the tests ran)
    seconds: float
    tests: list[TestResult] = field(default_factory=list)

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


@dataclass(frozen=True)
class Submission:
    name: str
    lora: Path | None  # None when the submission has no lora.py at all
    notes: Path | None


def find_submission(path: Path, lab: Lab) -> Submission:
    """A submission is a bare lora.py, or a directory laid out like the workbook (or holding lora.py)."""
    path = Path(path)
    if path.is_file():
        notes = path.parent / Path(lab.notes_path).name
        return Submission(path.stem if path.name != "lora.py" else path.parent.name, path, notes if notes.is_file() else None)
    lora = next((p for p in (path / lab.submission, path / "lora.py") if p.is_file()), None)
    notes = next((p for p in (path / lab.notes_path, path / Path(lab.notes_path).name) if p.is_file()), None)
    return Submission(path.name, lora, notes)


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
) -> Grade:
    lab = load_lab()
    start = time.monotonic()
    expected = expected_tests(hidden)
    if submission.lora is None:
        outcomes: dict[str, TestOutcome] = {}
        problem = f"no lora.py found (looked for {lab.submission} and lora.py)"
    else:
        outcomes, problem = _run_tests(submission.lora, expected, seed, limits, time_limit, hidden)
    tests = [
        TestResult(
            nodeid.rpartition("::")[2],
            outcomes[nodeid].outcome if nodeid in outcomes else "not run",
            outcomes[nodeid].message if nodeid in outcomes else (problem or "the test did not run"),
            outcomes[nodeid].exc_type if nodeid in outcomes else None,
        )
        for nodeid, _ in expected
    ]
    blocks = [_block_grade(block, expected, tests) for block in lab.blocks]
    if submission.lora is None:
        typecheck = ItemGrade(0.0, lab.typecheck.points, False, problem)
        notes = ItemGrade(0.0, lab.notes.points, False, problem)
    else:
        any_passed = any(t.outcome == "passed" for t in tests)
        typecheck, notes = _typecheck_and_notes(submission, lab, limits, mypy_cache, any_passed)
    return Grade(submission.name, blocks, typecheck, notes, problem, round(time.monotonic() - start, 1), tests)


def _run_tests(
    lora: Path,
    expected: Sequence[tuple[str, str]],
    seed: int,
    limits: Limits,
    time_limit: float,
    hidden: Path | None,
) -> tuple[dict[str, TestOutcome], str]:
    """Outcomes by nodeid, and the reason nothing ran ("" if tests ran)."""
    deadline = time.monotonic() + time_limit
    env = {"MINITUNER_SEED": str(seed)}
    run = run_overlay(lora, tests=_test_paths(hidden), env=env, timeout=time_limit, limits=limits, extra=_extra(hidden))
    outcomes = {o.nodeid: o for o in run.outcomes}
    collection = [o for o in run.outcomes if o.exc_type == "CollectionError"]
    if collection:
        return {}, "the submission could not be imported:\n" + _last_lines(collection[0].message)
    if not any(nodeid in outcomes for nodeid, _ in expected):
        return {}, (
            f"the test process ended (exit status {run.returncode}) before running any test: the submission "
            "probably exits, or kills its process, when it is imported\n" + _last_lines(run.output)
        ).rstrip()
    # A crash or a hang stops the run: re-run each unfinished block on its own.
    unfinished = sorted({m for nodeid, m in expected if _unfinished(outcomes.get(nodeid))})
    for i, marker in enumerate(unfinished):
        remaining = deadline - time.monotonic()
        if remaining <= 5:
            break
        rerun = run_overlay(
            lora, tests=_test_paths(hidden), pytest_args=["-m", marker], env=env,
            timeout=remaining / (len(unfinished) - i), limits=limits, extra=_extra(hidden),
        )  # fmt: skip
        for o in rerun.outcomes:
            if _unfinished(outcomes.get(o.nodeid)):
                outcomes[o.nodeid] = _explain(o, rerun)
    for nodeid, outcome in list(outcomes.items()):
        if outcome.outcome == "not run":
            outcomes[nodeid] = _explain(outcome, run)
    return outcomes, ""


def _unfinished(outcome: TestOutcome | None) -> bool:
    return outcome is None or outcome.outcome == "not run"


def _explain(outcome: TestOutcome, run: OverlayRun) -> TestOutcome:
    if outcome.outcome != "not run":
        return outcome
    why = "the test process was stopped at the time limit" if run.returncode is None else (
        f"the test process died (exit status {run.returncode})"
    )
    message = f"{why} while running this test or its block:\n{_last_lines(run.output)}"
    return TestOutcome(outcome.nodeid, outcome.blocks, "not run", "Crash", message)


def _last_lines(text: str, n: int = 8) -> str:
    return "\n".join(line[:300] for line in text.strip().splitlines()[-n:])


def _block_grade(block: Block, expected: Sequence[tuple[str, str]], tests: list[TestResult]) -> BlockGrade:
    mine = [t for (nodeid, marker), t in zip(expected, tests) if marker == block.marker]
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


def _typecheck_and_notes(
    submission: Submission, lab: Lab, limits: Limits, mypy_cache: Path | None, any_passed: bool
) -> tuple[ItemGrade, ItemGrade]:
    assert submission.lora is not None
    with overlaid_copy(submission.lora) as workdir:
        env = {**os.environ, "PYTHONPATH": python_path(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
        cache_args = ["--cache-dir", str(mypy_cache)] if mypy_cache else []
        command = [sys.executable, "-m", *lab.typecheck_command, *cache_args, lab.submission]
        code, output = run_limited(command, cwd=workdir, env=env, timeout=240, limits=_no_test_timeout(limits))
        # Typed stubs pass mypy: the type check counts only once some graded test passes.
        ok = code == 0 and any_passed
        if code == 0 and not any_passed:
            output = "mypy --strict passes, but no graded test does yet: the type check counts from the first one"
        typecheck = ItemGrade(lab.typecheck.points if ok else 0.0, lab.typecheck.points, ok, _last_lines(output, 20))
        if submission.notes is None:
            return typecheck, ItemGrade(0.0, lab.notes.points, False, f"no notes file ({lab.notes_path})")
        code, output = run_limited(
            [sys.executable, "-m", "labkit.measure"], cwd=workdir, env=env, timeout=120, limits=_no_test_timeout(limits)
        )
    try:
        measured = json.loads(output.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        measured = {key: f"measuring crashed: {_last_lines(output, 3)}" for key in lab.notes_keys}
    text = submission.notes.read_text(encoding="utf-8", errors="replace")[:100_000]
    problems = compare(parse_notes(text, lab.notes_keys), measured, lab.notes_keys)
    good = sum(not p for p in problems.values())
    detail = "\n".join(f"{k}: {p or 'ok'}" for k, p in problems.items())
    points = round(lab.notes.points * good / len(lab.notes_keys), 2)
    return typecheck, ItemGrade(points, lab.notes.points, good == len(lab.notes_keys), detail)


def _no_test_timeout(limits: Limits) -> Limits:
    return Limits(limits.memory_mb, limits.output_mb, None)


def grade_from_json(data: Mapping[str, object]) -> Grade:
    """The inverse of Grade.to_json, for merging shards."""
    d = dict(data)
    blocks = [
        BlockGrade(**{**b, "failures": [TestResult(**t) for t in b["failures"]]})  # type: ignore[arg-type]
        for b in d["blocks"]  # type: ignore[attr-defined]
    ]
    return Grade(
        name=str(d["name"]),
        blocks=blocks,
        typecheck=ItemGrade(**d["typecheck"]),  # type: ignore[arg-type]
        notes=ItemGrade(**d["notes"]),  # type: ignore[arg-type]
        problem=str(d["problem"]),
        seconds=float(d["seconds"]),  # type: ignore[arg-type]
        tests=[TestResult(**t) for t in d["tests"]],  # type: ignore[attr-defined]
    )
