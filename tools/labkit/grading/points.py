"""How a block's test results become its points: every rule is worth the same, and the invariants gate.

A rule is one graded test function, with all its cases (its parametrizations) together: it passes
only when every case passes, so a mistake costs the same whether one case shows it or ten. A block
starts at its points (labs/lab.toml) and loses `rule_points` for each rule it fails, down to 0; a
hidden test function is a rule of its block like any other. A block in which a test of one of the
lab's invariants fails its check earns nothing, and the feedback shows that failure first. The gate
is for an invariant seen broken: the lab's invariants matter because breaking them fails silently.
A test that ends in an exception of the code under test (or a timeout, a crash, an unfinished stub)
never got to check its invariant: it costs its rule, like any other failure, and gates nothing. `grade`,
`check`, the Classroom workflow (labkit.grading.classroom) and the bug zoo's grades all score
blocks here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from labkit.core.labinfo import Block, Invariant, Lab
from labkit.core.overlay import TestOutcome
from minituner.i18n import tr

#: What a test's exception is when its check, not the code it calls, failed (pytest.fail raises Failed).
CHECK_FAILURES = frozenset({"AssertionError", "Failed"})
#: One case of a block: (nodeid, passed, the exception's type name when it did not pass).
Case = tuple[str, bool, "str | None"]


def rule_of(nodeid: str) -> str:
    """The rule a test case belongs to: its nodeid without the parametrization ("path::test_x")."""
    return nodeid.partition("[")[0]


def graded_function(nodeid: str, lab: Lab) -> str | None:
    """The test function's name, for a case of the graded tests file (None for a hidden test)."""
    path, _, name = rule_of(nodeid).rpartition("::")
    return name if path == lab.graded_tests else None


@dataclass(frozen=True)
class BlockScore:
    points: float
    rules_passed: int
    rules: int
    broken: tuple[Invariant, ...]  # the invariants whose tests failed in this block, in lab order
    shown: tuple[int, ...]  # the indices of the failed cases, in the order the feedback shows them


def cases_of(outcomes: Iterable[TestOutcome], marker: str | None = None) -> list[Case]:
    """The cases of an overlay run's outcomes (those of one block's marker, when given)."""
    return [(o.nodeid, o.outcome == "passed", o.exc_type) for o in outcomes if marker is None or o.blocks[:1] == (marker,)]


def _invariant_checks_failed(lab: Lab, cases: Sequence[Case]) -> list[int]:
    """The indices of the cases of an invariant's test whose check failed (the invariant seen broken)."""
    tests = {name for inv in lab.invariants for name in inv.tests}
    return [i for i, (nodeid, passed, exc_type) in enumerate(cases)
            if not passed and exc_type in CHECK_FAILURES and graded_function(nodeid, lab) in tests]  # fmt: skip


def broken_invariants(lab: Lab, cases: Sequence[Case]) -> tuple[Invariant, ...]:
    """The invariants, in lab order, that cases show broken."""
    names = {graded_function(cases[i][0], lab) for i in _invariant_checks_failed(lab, cases)}
    return tuple(inv for inv in lab.invariants if names.intersection(inv.tests))


def score_block(block: Block, lab: Lab, cases: Sequence[Case]) -> BlockScore:
    """The points of block from its cases, in collection order."""
    rules: dict[str, bool] = {}
    for nodeid, passed, _ in cases:
        rule = rule_of(nodeid)
        rules[rule] = rules.get(rule, True) and passed
    failed = sum(not ok for ok in rules.values())
    broken = broken_invariants(lab, cases)
    points = 0.0 if broken else max(0.0, block.points - lab.rule_points * failed)
    # The failed check of an invariant's test first (the reason the block has no points), then the
    # others in collection order (sorted is stable).
    first = set(_invariant_checks_failed(lab, cases))
    shown = sorted((i for i, (_, passed, _) in enumerate(cases) if not passed), key=lambda i: i not in first)
    return BlockScore(round(points, 2), sum(rules.values()), len(rules), broken, tuple(shown))


def broken_message(invariant: Invariant, block_id: str, lang: str) -> str:
    """Why a block has no points: the invariant that broke and why it is non-negotiable, in lang."""
    tests = ", ".join(f"`{name}`" for name in invariant.tests)
    # i18n: {title} is the invariant's own title, which holds a colon ("Identity at init: a freshly ...")
    text = tr(lang, "Invariant broken — {title}. {why} So block {block} earns none of its points until it holds "
                    "(the tests that state it: {tests}).")  # fmt: skip
    return text.format(title=invariant.title[lang], why=invariant.why[lang], block=block_id, tests=tests)


def block_rules(lab: Lab, tests: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The rules (graded test function names) of each block's marker, in collection order.

    tests: (nodeid, marker) of every collected case, as labkit.grading.grader.expected_tests gives them.
    """
    rules: dict[str, list[str]] = {b.marker: [] for b in lab.blocks}
    for nodeid, marker in tests:
        name = graded_function(nodeid, lab)
        if name is not None and marker in rules and name not in rules[marker]:
            rules[marker].append(name)
    return rules
