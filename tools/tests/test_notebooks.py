"""The lab's notebooks: valid with the reference, failing at the right cell with the stubs, and
exactly what a fresh build from their sources produces."""

from __future__ import annotations

import io
import re
import tokenize
from typing import Any

import nbformat
import pytest

from labkit.content.notebooks import (
    LABS,
    LANGUAGE_TOKEN,
    LANGUAGES,
    NotebookSource,
    build,
    code_comments,
    comparable,
    load_sources,
    nbval_reference_problems,
    nbval_stub_problems,
    run_nbval,
)
from labkit.core.overlay import REFERENCE, STUBS, WORKBOOK_ROOT
from minituner.i18n import tr

SOURCES = load_sources()
EXPECTED = len(SOURCES) * len(LANGUAGES)


def test_one_notebook_per_block_in_each_language() -> None:
    assert sorted(s.block for s in SOURCES) == list("ABCDE")
    built = sorted(p.name for p in LABS.glob("*.ipynb"))
    assert built == sorted(s.path(lang).name for s in SOURCES for lang in LANGUAGES)


def _code_tokens(source: str, lang: str) -> list[tuple[int, str]]:
    """A code cell's code without its comments, its language ('"es"' in translator("es")) as LANGUAGE_TOKEN."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [(t.type, LANGUAGE_TOKEN if t.type == tokenize.STRING and t.string == f'"{lang}"' else t.string)
            for t in tokens if t.type != tokenize.COMMENT]  # fmt: skip


def _numbers(outputs: list[Any]) -> list[str]:
    """Every number a cell's outputs print, in any order: the same computation in both languages."""
    texts = [text for _type, text, data, _ename, _evalue in outputs for text in (text, data.get("text/plain"))]
    return sorted(re.findall(r"\d+(?:\.\d+)?(?:e[-+]\d+)?", " ".join(t for t in texts if isinstance(t, str))))


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_languages_share_code_and_outputs(source: NotebookSource) -> None:
    # Each language's notebook is run in its own language (labkit.content.notebooks.execute): the code is
    # one, its comments and what it prints through say() are translated, and the numbers printed are equal.
    en, es = (nbformat.read(source.path(lang), as_version=4) for lang in LANGUAGES)
    en_code, es_code = ([c for c in nb.cells if c.cell_type == "code"] for nb in (en, es))
    assert len(en_code) == len(es_code)
    for a, b in zip(en_code, es_code, strict=True):
        assert _code_tokens(a.source, "en") == _code_tokens(b.source, "es"), a.source
        assert a.metadata.get("tags") == b.metadata.get("tags")
        en_comments = [text for _row, _column, text in code_comments(a.source)]
        assert [text for _row, _column, text in code_comments(b.source)] == [tr("es", c) for c in en_comments]
    en_out, es_out = ([c[3] for c in comparable(nb) if c[0] == "code"] for nb in (en, es))
    for cell, a_out, b_out in zip(en_code, en_out, es_out, strict=True):
        assert [o[0] for o in a_out] == [o[0] for o in b_out], cell.source
        assert _numbers(a_out) == _numbers(b_out), cell.source
        if "say(" in cell.source and any(o[0] == "stream" for o in a_out):
            assert a_out != b_out, f"the Spanish notebook prints this cell's output in English:\n{cell.source}"
    prose = [(a.source, b.source) for a, b in zip(en.cells, es.cells, strict=True) if a.cell_type == "markdown"]
    assert all(a != b and b.strip() for a, b in prose), "a Markdown cell is not translated"


def test_nbval_passes_with_the_reference() -> None:
    run = run_nbval(REFERENCE)
    assert nbval_reference_problems(run, EXPECTED) == []


def test_nbval_fails_at_the_first_call_with_the_stubs() -> None:
    run = run_nbval(STUBS)
    assert nbval_stub_problems(run, WORKBOOK_ROOT, EXPECTED) == []


def test_regenerating_changes_nothing() -> None:
    assert build(SOURCES, check=True) == []
