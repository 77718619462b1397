"""The student's `check` (labkit.grading.check) and the notes file's parser (labkit.grading.measure).

The parser, the cleaning of failure messages and the wrapping are unit tests (no subprocess); two
end-to-end runs of `check` on the workbook's own lora.py (the stubs) check the progress lines, the
Spanish notebook names and `check --notebooks`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from labkit.core import overlay
from labkit.core.labinfo import load_lab
from labkit.core.overlay import WORKBOOK_ROOT
from labkit.grading import check
from labkit.grading.check import WIDTH, cell_error, notebook_report, wrap
from labkit.grading.feedback import feedback_markdown
from labkit.grading.grader import BlockGrade, Grade, ItemGrade, failure_message, grade_from_json
from labkit.grading.grader import TestResult as Result  # not collected as a test class
from labkit.grading.measure import (
    EXPECTED_PARAMS,
    compare,
    judge,
    parse_notes,
    read_number,
)
from minituner.i18n import tr

KEYS = load_lab().notes_keys
#: What labkit.grading.measure reports for the reference (names come back from JSON as a list).
GOOD = {"initial_output_diff": 0.0, "gradient_flow": ["lora_A", "lora_B"], "merge_diff": 6.6e-07,
        "merge_bound": 1.94e-05, "trainable_params": EXPECTED_PARAMS}
#: The same values as a notes file gives them once parsed.
GOOD_NOTES = {**GOOD, "gradient_flow": ("lora_A", "lora_B"), "trainable_params": 1024.0}


# ----------------------------------------------------------------------------- the notes file
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1024", 1024.0),
        ("1,024", 1024.0),
        ("1024.0", 1024.0),
        ("7.1e-07", 7.1e-07),
        ("~7e-7", 7e-07),
        ("≈ 7e-7", 7e-07),
        ("**6.6e-07**", 6.6e-07),
        ("`0.0`", 0.0),
        ("0,0", 0.0),
        ("7.1 × 10^-7", 7.1e-07),
        ("6.6e-07 (after merge_)", 6.6e-07),
        ("6.6e-07.", 6.6e-07),
        ("xyz", None),
        ("", None),
        ("1.2.3", None),
        ("12abc", None),
    ],
)
def test_read_number(text: str, value: float | None) -> None:
    assert read_number(text) == value


def test_parse_notes_accepts_markdown_case_and_separators() -> None:
    text = """# My notes

- **Initial_Output_Diff**: 0.0
* `merge_diff: ~7e-7`
> TRAINABLE_PARAMS = 1,024
Gradient_flow: `lora_B` and `lora_A`
merge_diff: 1.0   (a later line for the same key is ignored)
"""
    assert parse_notes(text, KEYS) == {"initial_output_diff": 0.0, "merge_diff": 7e-07, "trainable_params": 1024.0,
                                       "gradient_flow": ("lora_A", "lora_B")}
    assert all(p == "" for p in compare(parse_notes(text, KEYS), GOOD, KEYS).values())


def test_an_unreadable_value_is_named() -> None:
    notes = parse_notes("merge_diff: xyz\ntrainable_params: 1024\ngradient_flow: lora_A, lora_B\n", KEYS)
    assert notes["merge_diff"] == "xyz"
    problems = compare(notes, GOOD, KEYS)
    assert problems["merge_diff"] == "could not read the value 'xyz' of merge_diff: write a number, e.g. 7.2e-07"
    assert problems["trainable_params"] == ""
    assert "initial_output_diff: <value>" in problems["initial_output_diff"]
    es = compare(notes, GOOD, KEYS, "es")
    assert es["merge_diff"] == "no se pudo leer el valor 'xyz' de merge_diff: escribe un número, p. ej. 7.2e-07"
    # A readable line wins over an unreadable one for the same key.
    assert parse_notes("merge_diff: n/a\nmerge_diff: 3e-8\n", KEYS) == {"merge_diff": 3e-8}


def test_every_message_says_what_was_read_and_what_was_expected() -> None:
    notes: dict[str, object] = {"initial_output_diff": 0.5, "merge_diff": 0.01, "trainable_params": 1.0,
                                "gradient_flow": ("base.weight", "lora_A", "lora_B")}
    measured = {"initial_output_diff": 0.0, "merge_diff": 3e-8, "trainable_params": 1024,
                "gradient_flow": ["lora_A", "lora_B"]}
    read = {"initial_output_diff": "0.5", "merge_diff": "0.01", "trainable_params": "1",
            "gradient_flow": "base.weight, lora_A, lora_B"}
    for lang in ("en", "es"):
        for key, (problem, line) in judge(notes, measured, KEYS, lang).items():
            assert problem and line == problem
            assert read[key] in problem, problem  # what was read
            assert re.search(r"0\.0|1e-05|1024|lora_A, lora_B", problem), problem  # what was expected
    ok = judge(GOOD_NOTES, GOOD, KEYS)
    assert [line for _, line in ok.values()] == ["ok (0)", "ok (lora_A, lora_B)", "ok (6.6e-07)", "ok (1024)"]
    crashed = compare(GOOD, {"initial_output_diff": "NotImplementedError: Block A"}, KEYS)
    assert "NotImplementedError: Block A" in crashed["initial_output_diff"]


def test_gradient_flow_names_and_the_merge_bound() -> None:
    assert parse_notes("gradient_flow: [lora_A, lora_B]", KEYS)["gradient_flow"] == ("lora_A", "lora_B")
    assert parse_notes("gradient_flow: lora_B y lora_A", KEYS)["gradient_flow"] == ("lora_A", "lora_B")
    empty = compare(parse_notes("gradient_flow:", KEYS), GOOD, KEYS)["gradient_flow"]
    assert empty.startswith("no parameter names after 'gradient_flow:'"), empty
    leaky = {**GOOD, "gradient_flow": ["base.bias", "base.weight", "lora_A", "lora_B"]}
    problem = compare(GOOD_NOTES, leaky, KEYS)["gradient_flow"]
    assert "base.bias, base.weight, lora_A, lora_B received a gradient" in problem, problem
    # The merge bound is the graded tests' rule, 1e-5 * max(1, largest |output|), as measured.
    within = {**GOOD_NOTES, "merge_diff": 1.5e-05}
    assert compare(within, GOOD, KEYS)["merge_diff"] == ""
    assert "below 1.94e-05" in compare({**within, "merge_diff": 2e-05}, GOOD, KEYS)["merge_diff"]


def test_item_detail_follows_the_language_and_old_results_still_load() -> None:
    item = ItemGrade(0.0, 5.0, False, "no notes file (x)", {"en": "no notes file (x)", "es": "no hay archivo de notas (x)"})
    assert item.text("es") == "no hay archivo de notas (x)" and item.text("en") == "no notes file (x)"
    old = {"points": 0.0, "max_points": 5.0, "ok": False, "detail": "merge_diff: ok"}  # written before `details`
    data = {"name": "x", "blocks": [], "typecheck": old, "notes": old, "problem": "", "seconds": 1.0, "tests": []}
    grade = grade_from_json(data)
    assert grade.notes.text("es") == "merge_diff: ok"
    assert grade_from_json(grade.to_json()).notes == grade.notes


# ----------------------------------------------------------------------------- messages
def test_failure_message_keeps_only_the_tests_own_message() -> None:
    pytest_text = (
        "Rule A1: at init the layer must equal its base layer.\nMost likely cause: lora_B is not zero.\n"
        "assert False\n + where False = <function allclose at 0x7f3a2c>(tensor([[0.1]]), tensor([[0.2]]))\n"
        " +   where <function allclose at 0x7f3a2c> = np.allclose"
    )
    assert failure_message(pytest_text, "AssertionError") == (
        "Rule A1: at init the layer must equal its base layer.\nMost likely cause: lora_B is not zero."
    )
    bare = "assert 3 == 4\n +  where 3 = len([1, 2, 3])"
    assert failure_message(bare, "AssertionError") == "assert 3 == 4"
    other = "Block A: LoRALinear.__init__ is not implemented yet\nassert this stays"
    assert failure_message(other, "NotImplementedError") == other
    assert failure_message("shapes differ", "AssertionError") == "shapes differ"


def test_hints_are_wrapped() -> None:
    for block in load_lab().blocks:
        for lang in ("en", "es"):
            text = wrap(block.hint[lang])
            assert all(len(line) <= WIDTH for line in text.splitlines()), text
            assert text.split() == block.hint[lang].split()


def test_notebook_names_and_cell_errors() -> None:
    lab = load_lab()
    assert lab.block("A").notebook_in("es") == "labs/block_a_identity.es.ipynb"
    assert lab.block("A").notebook_in("en") == "labs/block_a_identity.ipynb"
    message = (
        "Cell execution caused an exception\n\n-----\nNotImplementedError                       Traceback "
        "(most recent call last)\nCell In[1], line 1\n----> 1 f(x)\n\nFile lora.py:155, in f(x)\n--> 155 "
        'raise NotImplementedError("Block E: f is not implemented yet")\n\n'
        "\x1b[31mNotImplementedError\x1b[39m: Block E: f is not implemented yet"
    )
    assert cell_error(message) == "NotImplementedError: Block E: f is not implemented yet"
    outcomes = [
        overlay.TestOutcome("labs/block_e_regression.ipynb::Cell 0", (), "passed", None, ""),
        overlay.TestOutcome("labs/block_e_regression.ipynb::Cell 3", (), "failed", "NbCellError", "later"),
        overlay.TestOutcome("labs/block_e_regression.ipynb::Cell 2", (), "failed", "NbCellError", message),
    ]
    line = notebook_report("labs/block_e_regression.ipynb", outcomes, "en")
    assert line == "block_e_regression.ipynb: cell 3 failed: NotImplementedError: Block E: f is not implemented yet"
    assert notebook_report("labs/x.es.ipynb", outcomes[:1], "es") == "x.es.ipynb: bien (1 celdas)"


def test_an_output_difference_says_which_side_is_yours() -> None:
    # nbval's message for a cell whose output changed (pytest's diff of reference_output == test_output).
    message = (
        "Cell outputs differ\n\nInput:\nprint(n)\n\nTraceback:\n mismatch 'stdout'\n\n assert reference_output == "
        "test_output failed:\n\n  'trainable: 1...tion: 0.155\\n' == 'trainable: 1...tion: 0.135\\n'\n  \n"
        "  Skipping 14 identical leading characters in diff, use -v to show\n    trainable: 1024\n"
        "  - fraction: 0.135\n  ?              ^\n  + fraction: 0.155\n  ?              ^\n"
    )
    outcomes = [overlay.TestOutcome("labs/block_b_wrapping.ipynb::Cell 1", (), "failed", "NbCellError", message)]
    report = notebook_report("labs/block_b_wrapping.ipynb", outcomes, "en").splitlines()
    assert report == ["block_b_wrapping.ipynb: cell 2 ran, but its output differs from the stored one:",
                      "    yours:  fraction: 0.135", "    stored: fraction: 0.155"], report  # fmt: skip
    spanish = notebook_report("labs/block_b_wrapping.es.ipynb", outcomes, "es")
    assert tr("es", "yours: ") in spanish and "Skipping" not in spanish, spanish


# ----------------------------------------------------------------------------- end to end
def _check(*args: str, lang_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LANG": lang_env, "LANGUAGE": "", "LC_ALL": ""}
    return subprocess.run([sys.executable, "-m", "labkit.grading.check", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=WORKBOOK_ROOT)  # fmt: skip


def test_check_shows_progress_per_block_in_spanish() -> None:
    run = _check(lang_env="es_ES.UTF-8")  # the workbook's own lora.py: the stubs
    assert run.returncode == 1, run.stdout + run.stderr
    lab = load_lab()
    lines = run.stdout.splitlines()
    assert lines[0].startswith("Calificando tu lora.py"), run.stdout
    progress = [i for i, line in enumerate(lines) for b in lab.blocks
                if line.startswith(f"  bloque {b.id}") and f"0 / {b.points:g} puntos" in line]  # fmt: skip
    assert len(progress) == len(lab.blocks) and progress == sorted(progress), run.stdout
    table = next(i for i, line in enumerate(lines) if "0 / 100 puntos" in line)
    mypy = next(i for i, line in enumerate(lines) if line.startswith("  mypy --strict"))
    notes = next(i for i, line in enumerate(lines) if line.startswith("  archivo de notas"))
    assert progress[-1] < mypy < notes < table, run.stdout
    header = lines[table + 2]
    assert header.split() == ["bloque", "reglas", "puntos", "estado"], run.stdout  # the one table, with its header
    stub = "Block A: LoRALinear.__init__ is not implemented yet"
    assert "sin empezar" in run.stdout and tr("es", stub) in run.stdout and stub not in run.stdout
    assert "Notebook del bloque: labs/block_a_identity.es.ipynb" in run.stdout
    assert "block_a_identity.ipynb" not in run.stdout
    assert "todavía no pasa ningún test evaluable" in run.stdout
    assert "no se pudo leer el valor '...' de initial_output_diff" in run.stdout  # the template's, unfilled


def test_check_notebooks_names_the_first_failing_cell() -> None:
    run = _check("--notebooks", "E", lang_env="C.UTF-8")
    assert run.returncode == 1, run.stdout + run.stderr
    match = re.search(r"^block_e_regression\.ipynb: cell (\d+) failed: NotImplementedError: Block E: .*$", run.stdout, re.M)
    assert match, run.stdout
    assert "\x1b[" not in run.stdout and "Traceback" not in run.stdout
    assert "block_a_identity.ipynb:" not in run.stdout  # only the block asked for


def test_a_broken_invariant_is_said_first_in_both_languages() -> None:
    lab = load_lab()
    failure = Result("test_lora_init_identity[bias-float32]", "failed", "output differs from base(x) by 0.1",
                         "AssertionError")  # fmt: skip
    blocks = [BlockGrade(b.id, b.title["en"], 0.0 if b.id == "A" else b.points, b.points, 1, 2,
                         "failing" if b.id == "A" else "done", [failure] if b.id == "A" else [], 7, 8,
                         ["identity"] if b.id == "A" else [])
              for b in lab.blocks]  # fmt: skip
    item = ItemGrade(5.0, 5.0, True, "")
    grade = Grade("x", blocks, item, item, {}, 1.0)
    for lang, said in (("en", "Invariant broken — Identity at init"), ("es", "Invariante roto — Identidad al inicio")):
        text = check.render(grade, lab, lang)
        assert said in text and text.index(said) < text.index("output differs from base(x)"), text
        assert " 0/24 " in text and " 7/8 " in text, text
        assert said in feedback_markdown(grade, lang)
