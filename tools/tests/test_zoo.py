"""The bug zoo: every classic mistake is caught by the graded suite, and named in its feedback."""

from __future__ import annotations

import pytest

from labkit.verify import REFERENCE
from labkit.zoo import TABLE_PATHS, Bug, ZooError, ZooResult, load_bugs, render_table, run_zoo, zoo_problems

MIN_VARIANTS = 30


@pytest.fixture(scope="module")
def zoo_results() -> list[ZooResult]:
    return run_zoo(load_bugs())


def test_zoo_is_big_and_covers_every_block() -> None:
    bugs = load_bugs()
    assert len(bugs) >= MIN_VARIANTS
    assert {b.block for b in bugs} == set("ABCDE")


def test_every_variant_is_caught_and_named(zoo_results: list[ZooResult]) -> None:
    problems = zoo_problems(zoo_results)
    assert not problems, "\n\n".join(problems)


def test_instructor_tables_match_the_runs(zoo_results: list[ZooResult]) -> None:
    for lang, path in TABLE_PATHS.items():
        assert path.exists(), f"{path} is missing: run `python -m labkit.zoo --write`"
        assert path.read_text(encoding="utf-8") == render_table(zoo_results, lang), (
            f"{path.name} is stale: run `python -m labkit.zoo --write` and commit the result"
        )


def test_stale_edit_is_an_error() -> None:
    bug = Bug("stale", "A", "m", "m", "k", (("text that is not in the reference", "x"),))
    with pytest.raises(ZooError, match="stale"):
        bug.apply(REFERENCE.read_text(encoding="utf-8"))


def test_surviving_variant_is_reported() -> None:
    # The reference itself, presented as a "variant" (a no-op edit), passes every test: it must
    # be reported as a survivor, which proves the check can fail.
    noop = Bug("noop", "A", "no mistake at all", "ninguno", "k", (("import math\n", "import math\n"),))
    (result,) = run_zoo([noop], jobs=1)
    assert zoo_problems([result]) == ["noop: survives the graded suite (no mistake at all)"]
