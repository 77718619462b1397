"""The points the pages promise are the points grading gives: every page's table against labs/lab.toml.

The instructor guide's "Points" section and the lab text's "How points are given" (both languages,
each under the heading anchor ``points``) hold a table of items, rules and points, and a table of
the lab's invariants and their tests. Here each table is read back and compared with the lab: a
block's points with ``lab.toml``, its rules with the graded test functions collected from
tests/test_minituner.py (``block_rules``, never points / rule_points), the type check, the notes
file and the total; and every invariant with its tests and the blocks they belong to. That a block
is worth rule_points times its rules is tools/tests/test_points.py's check.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from labkit.core.labinfo import Lab, load_lab
from labkit.grading.grader import expected_tests
from labkit.grading.points import block_rules

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ("docs/instructors/index.md", "docs/instructors/index.es.md")
LAB_TEXT = ("labs/00-lora-by-hand.md", "labs/00-lora-by-hand.es.md")
PAGES = GUIDE + LAB_TEXT

# The heading of the points section: any level, any title, the anchor {#points} or { #points }.
_POINTS_HEADING = re.compile(r"^(#{2,6}) .*\{\s*#points\s*\}\s*$", re.M)
_BLOCK_ROW = re.compile(r"^(?:Block|Bloque) ([A-Z])$")
_TYPECHECK_ROW = re.compile(r"^`mypy --strict`$")
_NOTES_ROW = re.compile(r"^(?:notes file|archivo de notas)\b")
_TOTAL_ROW = re.compile(r"^total$", re.I)
_TEST_NAME = re.compile(r"`(test_\w+)`")


@functools.cache
def lab() -> Lab:
    return load_lab()


@functools.cache
def rules_by_block() -> dict[str, list[str]]:
    """{block id: the graded test functions (rules) of that block}, from the collected tests."""
    by_marker = block_rules(lab(), expected_tests())
    return {b.id: by_marker[b.marker] for b in lab().blocks}


def points_section(page: str) -> str:
    """The text of page's points section: from its {#points} heading to the next heading as high."""
    text = (ROOT / page).read_text(encoding="utf-8")
    headings = list(_POINTS_HEADING.finditer(text))
    assert len(headings) == 1, f"{page}: expected one heading with the anchor {{#points}}, found {len(headings)}"
    start, level = headings[0].end(), len(headings[0].group(1))
    following = re.compile(rf"^#{{1,{level}}} ", re.M).search(text, start)
    return text[start : following.start() if following else len(text)]


def table_rows(section: str) -> list[list[str]]:
    """The cells of every Markdown table row of section (separator rows left out)."""
    rows = []
    for line in section.splitlines():
        line = line.strip()
        if line.startswith("|") and line.endswith("|") and not re.fullmatch(r"\|[-|: ]+\|", line):
            rows.append([cell.strip() for cell in line[1:-1].split("|")])
    return rows


def number(cell: str) -> float | None:
    return float(cell.replace(",", ".")) if cell else None


def points_table(page: str) -> dict[str, tuple[float | None, float | None]]:
    """{item: (rules, points)}, items "A".."E", "typecheck", "notes" and "total", from page's table."""
    items: dict[str, tuple[float | None, float | None]] = {}
    for cells in table_rows(points_section(page)):
        if len(cells) != 3:
            continue
        name, rules, points = cells
        block = _BLOCK_ROW.match(name)
        key = (block.group(1) if block else "typecheck" if _TYPECHECK_ROW.match(name)
               else "notes" if _NOTES_ROW.match(name) else "total" if _TOTAL_ROW.match(name) else None)  # fmt: skip
        if key is not None:
            assert key not in items, f"{page}: the points table has two rows for {key}"
            items[key] = (number(rules), number(points))
    return items


@pytest.mark.parametrize("page", PAGES)
def test_points_table_matches_lab(page: str) -> None:
    table = points_table(page)
    expected: dict[str, tuple[float | None, float | None]] = {
        b.id: (float(len(rules_by_block()[b.id])), b.points) for b in lab().blocks
    }
    expected["typecheck"] = (None, lab().typecheck.points)
    expected["notes"] = (None, lab().notes.points)
    expected["total"] = (float(sum(len(r) for r in rules_by_block().values())), lab().total_points)
    assert table == expected, f"{page}: the points table (item: (rules, points)) differs from labs/lab.toml"


@pytest.mark.parametrize("page", PAGES)
def test_rule_points_stated(page: str) -> None:
    section = points_section(page)
    points = f"{lab().rule_points:g}"
    assert re.search(rf"\b{points} (?:points|puntos)\b", section), f"{page}: says nowhere that a rule is worth {points} points"


@pytest.mark.parametrize("page", PAGES)
def test_invariants_and_their_tests(page: str) -> None:
    section = points_section(page)
    rows = [cells for cells in table_rows(section) if _TEST_NAME.search(" | ".join(cells))]
    block_of = {name: block for block, names in rules_by_block().items() for name in names}
    for invariant in lab().invariants:
        for name in invariant.tests:
            assert f"`{name}`" in section, f"{page}: invariant {invariant.id}'s test {name} is not named"
        mine = [cells for cells in rows if f"`{invariant.tests[0]}`" in " | ".join(cells)]
        assert len(mine) == 1, f"{page}: expected one row of the invariants table for {invariant.id}"
        row = " | ".join(mine[0])
        assert set(_TEST_NAME.findall(row)) == set(invariant.tests), (
            f"{page}: the row of invariant {invariant.id} names {sorted(_TEST_NAME.findall(row))}, "
            f"expected {sorted(invariant.tests)}"
        )
        blocks = set(re.findall(r"\(([A-Z])\)", row))
        assert blocks == {block_of[name] for name in invariant.tests}, (
            f"{page}: the row of invariant {invariant.id} gives the blocks {sorted(blocks)}, its tests "
            f"belong to {sorted({block_of[name] for name in invariant.tests})}"
        )
    assert len(rows) == len(lab().invariants), f"{page}: the invariants table has {len(rows)} rows, expected {len(lab().invariants)}"
