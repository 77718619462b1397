"""The lab's notebooks: valid with the reference, failing at the right cell with the stubs, and
exactly what a fresh build from their sources produces."""

from __future__ import annotations

import nbformat
import pytest
from labkit.content.notebooks import (
    LABS,
    LANGUAGES,
    NotebookSource,
    build,
    comparable,
    load_sources,
    nbval_reference_problems,
    nbval_stub_problems,
    run_nbval,
)
from labkit.core.overlay import REFERENCE, STUBS, WORKBOOK_ROOT

SOURCES = load_sources()
EXPECTED = len(SOURCES) * len(LANGUAGES)


def test_one_notebook_per_block_in_each_language() -> None:
    assert sorted(s.block for s in SOURCES) == list("ABCDE")
    built = sorted(p.name for p in LABS.glob("*.ipynb"))
    assert built == sorted(s.path(lang).name for s in SOURCES for lang in LANGUAGES)


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_languages_share_code_and_outputs(source: NotebookSource) -> None:
    en, es = (nbformat.read(source.path(lang), as_version=4) for lang in LANGUAGES)
    code = [c for c in comparable(en) if c[0] == "code"]
    assert code == [c for c in comparable(es) if c[0] == "code"]
    prose = [(a.source, b.source) for a, b in zip(en.cells, es.cells) if a.cell_type == "markdown"]
    assert all(a != b and b.strip() for a, b in prose), "a Markdown cell is not translated"


def test_nbval_passes_with_the_reference() -> None:
    run = run_nbval(REFERENCE)
    assert nbval_reference_problems(run, EXPECTED) == []


def test_nbval_fails_at_the_first_call_with_the_stubs() -> None:
    run = run_nbval(STUBS)
    assert nbval_stub_problems(run, WORKBOOK_ROOT, EXPECTED) == []


def test_regenerating_changes_nothing() -> None:
    assert build(SOURCES, check=True) == []
