"""The bug zoo: every classic mistake is caught by the graded suite, named in its feedback, and costs points fairly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from labkit.core.edits import EditError
from labkit.core.labinfo import load_lab
from labkit.core.overlay import REFERENCE, OverlayRun
from labkit.core.overlay import TestOutcome as Outcome  # not collected as a test class
from labkit.grading.grader import ItemGrade
from labkit.quality.zoo import (
    TABLE_PATHS,
    Alternative,
    Bug,
    Scored,
    ZooResult,
    fairness_problems,
    first_shown,
    load_alternatives,
    load_bugs,
    render_table,
    run_alternatives,
    run_messages,
    run_zoo,
    translation_problems,
    zoo_problems,
)

MIN_VARIANTS = 30


@pytest.fixture(scope="module")
def zoo_results() -> list[ZooResult]:
    return run_zoo(load_bugs())


@pytest.fixture(scope="module")
def zoo_runs_es() -> list[OverlayRun]:
    """The zoo's runs again, the tests' messages in Spanish (LANGUAGE=es)."""
    return run_messages(load_bugs(), "es")


@pytest.fixture(scope="module")
def correct() -> dict[str, Scored]:
    """The reference and the correct alternatives, run and scored."""
    return run_alternatives(load_alternatives())


def test_zoo_is_big_and_covers_every_block() -> None:
    bugs = load_bugs()
    assert len(bugs) >= MIN_VARIANTS
    assert {b.block for b in bugs} == set("ABCDE")


def test_every_variant_is_caught_and_named(zoo_results: list[ZooResult]) -> None:
    problems = zoo_problems(zoo_results)
    assert not problems, "\n\n".join(problems)


def test_first_failure_is_in_the_students_language(zoo_results: list[ZooResult], zoo_runs_es: list[OverlayRun]) -> None:
    # What plain pytest and check show first, for every variant, in Spanish: the same failure, translated.
    problems = translation_problems(zoo_results, zoo_runs_es)
    assert not problems, "\n\n".join(problems)


def test_an_untranslated_first_failure_is_reported(zoo_results: list[ZooResult]) -> None:
    # The English run presented as the Spanish one: every variant whose first failure is the workbook's text.
    # (A failure the tests wrote, an assertion or a pytest.fail; the others are the variant's own exceptions.)
    problems = translation_problems(zoo_results, [r.run for r in zoo_results])
    reported = {p.partition(":")[0] for p in problems}
    ours = {r.bug.id for r in zoo_results if r.first is not None and r.first.exc_type in ("AssertionError", "Failed")}
    about_language = all("in English" in p or "is not translated" in p for p in problems)
    assert ours and ours <= reported and about_language, sorted(ours - reported)


def test_correct_alternatives_pass_every_test(correct: dict[str, Scored]) -> None:
    # The lab allows choices the reference does not make (a scale buffer saved with the adapter):
    # the graded tests must not demand the reference's own.
    assert len(correct) > 1, "tools/zoo/bugs.toml lists no [[alternative]]"
    failing = {name: scored.failing for name, scored in correct.items() if scored.failing}
    assert not failing, f"correct alternatives that fail graded tests: {failing}"


def test_a_wrong_alternative_is_reported() -> None:
    # A bug presented as an "alternative" fails tests, and run_alternatives names them.
    bug = next(b for b in load_bugs() if b.id == "B-random-init")
    wrong = Alternative("wrong", "a bug in disguise", "un error disfrazado", bug.edits)
    assert "test_lora_init_identity_factors[float32]" in run_alternatives([wrong], jobs=1)["wrong"].failing


def test_points_are_fair(zoo_results: list[ZooResult], correct: dict[str, Scored]) -> None:
    # labs/lab.toml's points against the zoo: correct code at full marks, every variant below it,
    # an invariant-breaker without its block, every other variant at least one rule down.
    problems = fairness_problems(load_lab(), zoo_results, correct)
    assert not problems, "\n".join(problems)


def test_an_unfair_weight_is_reported(zoo_results: list[ZooResult], correct: dict[str, Scored]) -> None:
    lab = load_lab()
    # A rule worth 1 point: worth less than a notes value, blocks no longer 3 x their rules, and
    # bugs that cost 1 or 2 points.
    cheap = fairness_problems(dataclasses.replace(lab, rule_points=1.0), zoo_results, correct)
    assert any(p.startswith("rule_points = 1: a rule must be worth more than one notes value") for p in cheap), cheap
    assert any(p.startswith("block A is worth 24 points, not rule_points x its 8 rules = 8") for p in cheap), cheap
    assert any(p.startswith("dropout-after-A: caught, but loses only 1 points") for p in cheap), cheap
    # No gate: an invariant-breaker keeps most of its block.
    ungated = fairness_problems(dataclasses.replace(lab, invariants=()), zoo_results, correct)
    assert any(p.startswith("B-random-init: invariant 'identity' is not one of") for p in ungated), ungated
    weak = dataclasses.replace(lab, invariants=tuple(dataclasses.replace(i, tests=i.tests[:1]) for i in lab.invariants))
    assert any(p.startswith("wrap-no-freeze breaks invariant 'only-lora-learns', yet block B gets ")
               for p in fairness_problems(weak, zoo_results, correct)), "a gate that misses a test goes unseen"


def test_instructor_tables_match_the_runs(zoo_results: list[ZooResult], correct: dict[str, Scored]) -> None:
    for lang, path in TABLE_PATHS.items():
        assert path.exists(), f"{path} is missing: run `python -m labkit.quality.zoo --write`"
        assert path.read_text(encoding="utf-8") == render_table(zoo_results, correct, lang), (
            f"{path.name} is stale: run `python -m labkit.quality.zoo --write` and commit the result"
        )


def test_stale_edit_is_an_error() -> None:
    bug = Bug("stale", "A", "m", "m", "k", (("text that is not in the reference", "x"),))
    with pytest.raises(EditError, match="stale"):
        bug.apply(REFERENCE.read_text(encoding="utf-8"))


def test_surviving_variant_is_reported() -> None:
    # The reference itself, presented as a "variant" (a no-op edit), passes every test: it must
    # be reported as a survivor, which proves the check can fail.
    noop = Bug("noop", "A", "no mistake at all", "ninguno", "k", (("import math\n", "import math\n"),))
    (result,) = run_zoo([noop], jobs=1)
    assert zoo_problems([result]) == ["noop: survives the graded suite (no mistake at all)"]


# ---------------------------------------------------------------- the first failure shown, on made-up runs
def outcome(name: str, block: str, result: str = "passed", message: str = "", exc_type: str | None = None) -> Outcome:
    exc = exc_type or (None if result == "passed" else "AssertionError")
    return Outcome(f"tests/test_minituner.py::{name}", (block,), result, exc, message)


def made_up(*outcomes: Outcome, keyword: str = "zeros", also: tuple[tuple[str, str], ...] = ()) -> ZooResult:
    bug = Bug("made-up", "A", "a made-up mistake", "un error inventado", keyword, (("x", "y"),), also=also)
    return ZooResult(bug, Scored(OverlayRun(Path("made-up.py"), outcomes, 1, ""), ItemGrade(0.0, 5.0, False, "")))


def test_first_shown_is_checks_choice() -> None:
    # Lab order of the blocks, not the order of the run; in a block, collection order; a block whose
    # every failure is the stubs' NotImplementedError ("not started") is skipped while another fails.
    run = made_up(
        outcome("test_b1", "block_b", "failed", "B's first"),
        outcome("test_a1", "block_a", "failed", "Block A: not implemented", "NotImplementedError"),
        outcome("test_c1", "block_c"),
        outcome("test_c2", "block_c", "failed", "C's first"),
        outcome("test_c3", "block_c", "failed", "C's second"),
    ).run
    assert first_shown(run, ["block_a", "block_b", "block_c"]).name == "test_b1"  # type: ignore[union-attr]
    assert first_shown(run, ["block_c", "block_b", "block_a"]).name == "test_c2"  # type: ignore[union-attr]
    only_stubs = made_up(outcome("test_a1", "block_a", "failed", "Block A", "NotImplementedError")).run
    assert first_shown(only_stubs, ["block_a"]).name == "test_a1"  # type: ignore[union-attr]
    assert first_shown(made_up(outcome("test_a1", "block_a")).run, ["block_a"]) is None


def test_keyword_only_in_a_later_failure_is_reported() -> None:
    # The mistake is named, but only by a failure the student does not see first: that is a problem.
    later = made_up(
        outcome("test_lora_init_identity_forward_scaling", "block_a", "failed", "output differs"),
        outcome("test_lora_init_identity_factors", "block_a", "failed", "lora_B must start at zeros"),
    )
    (problem,) = zoo_problems([later])
    assert problem.startswith(
        "made-up: the first failure shown, test_lora_init_identity_forward_scaling, does not mention 'zeros'")
    first = made_up(*reversed(later.run.outcomes))
    assert zoo_problems([first]) == []


def test_also_needs_every_case_failing_with_its_keyword() -> None:
    also = (("test_rejects", "nothing may be copied"),)
    cases = [outcome("test_first", "block_c", "failed", "zeros")] + [
        outcome(f"test_rejects[{how}]", "block_c", "failed", "nothing may be copied") for how in ("a", "b")
    ]
    assert zoo_problems([made_up(*cases, also=also)]) == []
    one_passes = [*cases[:2], outcome("test_rejects[b]", "block_c")]
    (problem,) = zoo_problems([made_up(*one_passes, also=also)])
    assert "['test_rejects[b]']" in problem
    wrong_words = [*cases[:2], outcome("test_rejects[b]", "block_c", "failed", "name every key")]
    assert zoo_problems([made_up(*wrong_words, also=also)]) == [problem]


def test_an_invariants_failure_is_shown_first() -> None:
    # In a block whose invariant broke, the invariant's test is what the student reads first, even
    # when an earlier test of the block failed too: that failure is why the block has no points.
    run = made_up(
        outcome("test_lora_init_identity_factors", "block_a", "failed", "lora_B must start at zeros"),
        outcome("test_freeze_only_lora_learns[bias]", "block_a", "failed", "base.weight received a gradient"),
    ).run
    assert first_shown(run, ["block_a"]).name == "test_freeze_only_lora_learns[bias]"  # type: ignore[union-attr]
