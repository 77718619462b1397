"""How test results become points (labkit.grading.points), and labs/lab.toml's points against the graded tests."""

from __future__ import annotations

import pytest
from labkit.core.labinfo import load_lab
from labkit.grading.grader import expected_tests
from labkit.grading.points import Case, block_rules, score_block

LAB = load_lab()
A = LAB.block("A")  # 8 rules, 24 points; test_lora_init_identity states the identity invariant
TESTS = LAB.graded_tests


def case(name: str, passed: bool = True, exc_type: str = "AssertionError") -> Case:
    return (f"{TESTS}::{name}", passed, None if passed else exc_type)


def test_a_rule_passes_only_with_every_case() -> None:
    all_pass = [case("test_x[1]"), case("test_x[2]"), case("test_y")]
    assert score_block(A, LAB, all_pass).points == A.points
    one_case = [case("test_x[1]"), case("test_x[2]", False), case("test_y")]
    score = score_block(A, LAB, one_case)
    assert (score.points, score.rules_passed, score.rules) == (A.points - LAB.rule_points, 1, 2)
    # Ten failing cases of one rule cost what one does.
    many = [case(f"test_x[{k}]", False) for k in range(10)] + [case("test_y")]
    assert score_block(A, LAB, many).points == A.points - LAB.rule_points


def test_hidden_rules_cost_like_any_other_and_a_block_stops_at_zero() -> None:
    hidden = [case("test_y"), ("tests/hidden/test_more.py::test_h[1]", False, "AssertionError"),
              ("tests/hidden/test_more.py::test_h[2]", False, "ValueError")]
    assert score_block(A, LAB, hidden).points == A.points - LAB.rule_points
    everything = [case(f"test_{k}", False) for k in range(20)]
    assert score_block(A, LAB, everything).points == 0


def test_an_invariant_gates_its_block_and_is_shown_first() -> None:
    cases = [case("test_lora_init_identity_factors", False), case("test_y"), case("test_lora_init_identity[a]", False)]
    score = score_block(A, LAB, cases)
    assert score.points == 0 and [inv.id for inv in score.broken] == ["identity"]
    assert score.shown == (2, 0)
    # A hidden test cannot be an invariant's, whatever its name.
    hidden = [case("test_y"), ("tests/hidden/test_more.py::test_lora_init_identity", False, "AssertionError")]
    assert score_block(A, LAB, hidden).broken == ()


def test_only_a_failed_check_gates() -> None:
    # An invariant's test that ended in the code's own exception (or a timeout, a stub) never saw the
    # invariant: it costs its rule and gates nothing. pytest.fail's Failed is a failed check.
    for exc_type, gated in (("ValueError", False), ("Timeout", False), ("NotImplementedError", False),
                            ("Failed", True), ("AssertionError", True)):  # fmt: skip
        score = score_block(A, LAB, [case("test_y"), case("test_lora_init_identity[a]", False, exc_type)])
        assert (score.points == 0) == gated and bool(score.broken) == gated, exc_type
        assert gated or score.points == A.points - LAB.rule_points


def test_every_rule_is_worth_more_than_a_notes_value_and_blocks_are_their_rules() -> None:
    assert LAB.rule_points > LAB.notes.points / len(LAB.notes_keys)
    assert LAB.total_points == 100
    rules = block_rules(LAB, expected_tests())
    for block in LAB.blocks:
        assert block.points == LAB.rule_points * len(rules[block.marker]), (
            f"block {block.id}: {block.points:g} points for {len(rules[block.marker])} rules; "
            f"labs/lab.toml says every rule is worth {LAB.rule_points:g}"
        )


@pytest.mark.parametrize("invariant", LAB.invariants, ids=lambda inv: inv.id)
def test_every_invariant_names_graded_tests(invariant: object) -> None:
    rules = {name for names in block_rules(LAB, expected_tests()).values() for name in names}
    missing = [name for name in invariant.tests if name not in rules]  # type: ignore[attr-defined]
    assert not missing, f"labs/lab.toml names tests that are not graded tests: {missing}"


def test_the_stubs_collect_the_tests_the_reference_does() -> None:
    # expected_tests collects with the stubs (the student edition has no reference): same tests, same blocks.
    from labkit.core.overlay import REFERENCE, run_overlay

    run = run_overlay(REFERENCE, pytest_args=["--collect-only"])
    assert tuple((o.nodeid, o.blocks[0] if o.blocks else "") for o in run.outcomes) == expected_tests()
