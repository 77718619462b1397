"""Figures the pages quote about the graded tests come from the tests' own constants.

Each page that says what a test checks (a tolerance, a rank, a model size, a count) is read here in
both languages and compared with tests/test_minituner.py, imported as a module, and with
labkit.grading.measure, which judges the notes file by the same rules; the example value of merge_diff
that the lab shows is measured on the reference. Change a constant and these tests name every
page that still quotes the old figure.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest
from labkit.core.overlay import REFERENCE, WORKBOOK_ROOT, import_file
from labkit.grading import measure
from torch import nn

import scenarios

GRADED_TESTS = WORKBOOK_ROOT / "tests" / "test_minituner.py"
#: Pages that state the merge rule or quote a tolerance, as (English, Spanish).
RULE_PAGES = [
    ("labs/00-lora-by-hand.md", "labs/00-lora-by-hand.es.md"),
    ("src/minituner/BLUEPRINT.md", "src/minituner/BLUEPRINT.es.md"),
    ("docs/instructors/index.md", "docs/instructors/index.es.md"),
]
#: Every page that may quote a tolerance of the tests (a number written 1e-5, 6.6e-07 ...).
TOLERANCE_PAGES = [page for pair in RULE_PAGES for page in pair] + [
    "docs/theory/02-parameter-count.md", "docs/theory/02-parameter-count.es.md",
    "docs/theory/03-init-and-scaling.md", "docs/theory/03-init-and-scaling.es.md",
    "solutions/00-lora-by-hand-ref.md", "solutions/00-lora-by-hand-ref.es.md",
]  # fmt: skip
_SCIENTIFIC = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?e-0?\d+)(?![\w])")


@pytest.fixture(scope="module")
def graded() -> ModuleType:
    """tests/test_minituner.py as a module: its constants, never its tests."""
    spec = importlib.util.spec_from_file_location("graded_tests_constants", GRADED_TESTS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _text(page: str) -> str:
    path = WORKBOOK_ROOT / page
    assert path.exists(), f"{page} is missing"
    return path.read_text(encoding="utf-8")


def _paragraph(text: str, anchor: str, page: str) -> str:
    """The paragraph of text that contains anchor (between blank lines)."""
    at = text.find(anchor)
    assert at >= 0, f"{page}: {anchor!r} is not on the page"
    start = text.rfind("\n\n", 0, at) + 2
    end = text.find("\n\n", at)
    return " ".join(text[start : end if end >= 0 else len(text)].split())


@contextmanager
def _reference_as_lora() -> Iterator[None]:
    """minituner.lora is the reference solution for the duration (the scenarios import it)."""
    saved = sys.modules.get("minituner.lora")
    sys.modules["minituner.lora"] = import_file(REFERENCE, "reference_lora")
    try:
        yield
    finally:
        if saved is None:
            del sys.modules["minituner.lora"]
        else:
            sys.modules["minituner.lora"] = saved


def test_tolerances_quoted_are_the_tests(graded: ModuleType) -> None:
    tolerances = {graded.MERGE_TOLERANCE, graded.ROUNDTRIP_TOLERANCE}
    assert measure.MERGE_TOLERANCE == graded.MERGE_TOLERANCE, (
        "labkit.grading.measure judges merge_diff with another tolerance than the graded tests"
    )
    with _reference_as_lora():
        measured = measure.measure(scenarios.run)  # the notes measurement's scenario, run here
    example = float(measure.EXAMPLES["merge_diff"])
    assert f"{measured['merge_diff']:.1e}" == f"{example:.1e}", (
        f"the example merge_diff {example:g} is not what the reference measures ({measured['merge_diff']:.3g})"
    )
    for page in TOLERANCE_PAGES:
        for number in _SCIENTIFIC.findall(_text(page)):
            value = float(number.replace(",", "."))
            assert value in tolerances or value == example, (
                f"{page} quotes {number}, which is neither a tolerance of the graded tests "
                f"({sorted(tolerances)}) nor the measured example merge_diff ({example:g})"
            )


def test_the_merge_rule_is_stated_as_checked(graded: ModuleType) -> None:
    # One rule: the largest difference is below MERGE_TOLERANCE * max(1, largest |output|).
    tol = f"{graded.MERGE_TOLERANCE:.0e}".replace("e-0", "e-")
    out = nn.Linear(2, 2).weight.new_tensor([[3.0, -0.5]])
    assert graded.merge_tolerance(out) == pytest.approx(3.0 * graded.MERGE_TOLERANCE)
    assert measure.merge_bound(3.0) == pytest.approx(graded.merge_tolerance(out))
    for english, spanish in RULE_PAGES:
        assert f"{tol} × max(1, largest |output|)" in _text(english), f"{english}: the merge rule is not stated"
        assert f"{tol} × max(1, mayor |salida|)" in _text(spanish), f"{spanish}: the merge rule is not stated"


def test_wrapped_minigpt_count_quoted_is_the_tests(graded: ModuleType) -> None:
    from minituner.model import MiniGPT

    cfg, r = graded.SMALL_GPT, graded.WRAPPED_RANK
    targets = graded.expected_targets(cfg)
    per_r = sum(m.in_features + m.out_features for n, m in MiniGPT(cfg).named_modules()
                if isinstance(m, nn.Linear) and n in targets)  # fmt: skip
    figures = [f"{cfg.n_layer} ", f" {cfg.n_embd} ", f" {4 * cfg.n_embd}", f"{per_r} r", f"r = {r}", f" {per_r * r} "]
    for page in ["docs/theory/02-parameter-count.md", "docs/theory/02-parameter-count.es.md"]:
        paragraph = _paragraph(_text(page), "`test_param_count_wrapped_minigpt`", page)
        missing = [f.strip() for f in figures if f not in f" {paragraph} "]
        assert not missing, f"{page}: the paragraph on test_param_count_wrapped_minigpt lacks {missing}:\n{paragraph}"


def test_linear_count_quoted_is_the_tests() -> None:
    name = "test_param_count_linear"
    source = GRADED_TESTS.read_text(encoding="utf-8")
    assert f"def {name}(" in source, f"the graded tests have no {name}"
    body = source[source.index(f"def {name}("):].split("\n\n\n")[0]
    assert f"trainable == {measure.EXPECTED_PARAMS}" in body, f"{name} does not check {measure.EXPECTED_PARAMS}"
    assert measure.EXPECTED_PARAMS == 8 * (64 + 64)
    for page in ["docs/theory/02-parameter-count.md", "docs/theory/02-parameter-count.es.md"]:
        assert f"`{name}`" in _text(page), f"{page} does not name {name}"


def test_a_wrong_figure_is_caught(graded: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    # The checks can fail: a page quoting another rank than the test's is named.
    monkeypatch.setattr(graded, "WRAPPED_RANK", graded.WRAPPED_RANK + 1)
    with pytest.raises(AssertionError, match="02-parameter-count.md: the paragraph"):
        test_wrapped_minigpt_count_quoted_is_the_tests(graded)
    monkeypatch.setattr(graded, "ROUNDTRIP_TOLERANCE", 1e-6)
    monkeypatch.setattr(graded, "MERGE_TOLERANCE", 1e-6)
    with pytest.raises(AssertionError, match="another tolerance"):
        test_tolerances_quoted_are_the_tests(graded)
