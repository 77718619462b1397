"""The example submissions are edits of the reference or the stubs, written out whole only to be graded.

How they grade: tools/tests/test_grading.py (and test_rules.py for the code rule).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from labkit.core.edits import EditError
from labkit.core.labinfo import load_lab
from labkit.core.overlay import REFERENCE, STUBS
from labkit.core.tomlread import read_toml
from labkit.grading.examples import (
    EXAMPLES,
    ExampleError,
    example_names,
    load_edited,
    materialize,
)

#: A file under tools/grading/examples may share at most this many non-blank lines with the
#: reference or with the stubs. A copy of either with a few changes shares about 120 or more; a copy
#: of the stubs shares about 60 with the reference (the signatures); the files kept today, none.
MAX_COMMON_LINES = 40


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def common_lines(a: str, b: str) -> int:
    """How many non-blank lines (leading and trailing spaces aside) two texts have in common, in order."""
    matcher = difflib.SequenceMatcher(None, _lines(a), _lines(b), autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks())


def test_every_example_is_written_out(tmp_path: Path) -> None:
    classroom = materialize(tmp_path)
    lab = load_lab()
    assert sorted(p.stem if p.suffix == ".py" else p.name for p in classroom.iterdir()) == example_names()
    assert set(example_names()) == set(read_toml(EXAMPLES / "expected.toml")), "examples and expected.toml disagree"
    complete = classroom / "complete"
    assert (complete / lab.submission).read_text(encoding="utf-8") == REFERENCE.read_text(encoding="utf-8")
    assert (complete / lab.notes_path).is_file() and not (classroom / "partial" / lab.notes_path).exists()
    assert (classroom / "own_tests" / "conftest.py").is_file()
    assert (classroom / "own_tests" / lab.submission).read_text() == (classroom / "partial" / lab.submission).read_text()
    link = classroom / "symlink_solutions" / lab.submission
    assert link.is_symlink() and link.resolve() == REFERENCE.resolve(), "symlink_solutions must stay a link to the reference"


def test_every_edited_example_differs_from_its_base(tmp_path: Path) -> None:
    classroom = materialize(tmp_path)
    lab = load_lab()
    for example in load_edited():
        if not example.edits and not example.append:
            continue  # complete: the reference itself, as a finished student hands it in
        path = classroom / (f"{example.name}.py" if example.layout == "file" else f"{example.name}/{lab.submission}")
        base = {"reference": REFERENCE, "stubs": STUBS}.get(example.base)
        if base is not None:
            assert path.read_text(encoding="utf-8") != base.read_text(encoding="utf-8"), example.name


def _edits_file(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "examples"
    folder.mkdir()
    (folder / "edits.toml").write_text(text, encoding="utf-8")
    return folder


def test_an_edit_that_no_longer_applies_names_its_example(tmp_path: Path) -> None:
    folder = _edits_file(tmp_path, """
[[example]]
name = "stale_one"
comment = "an edit whose text the reference lost"
[[example.edit]]
old = "text that is not in the reference"
new = "x"
""")
    with pytest.raises(EditError, match="example 'stale_one': edit target found 0 times"):
        materialize(tmp_path / "out", folder=folder, edits_file=folder / "edits.toml")


def test_an_edit_found_twice_is_an_error(tmp_path: Path) -> None:
    folder = _edits_file(tmp_path, """
[[example]]
name = "ambiguous"
comment = "an edit whose text is everywhere"
[[example.edit]]
old = "self"
new = "this"
""")
    with pytest.raises(EditError, match=r"ambiguous.*found [0-9]+ times"):
        materialize(tmp_path / "out", folder=folder, edits_file=folder / "edits.toml")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('name = "a"\ncomment = "c"\n[[example.edit]]\nold = "import math"\nnew = "import math"\nappend = "x"\n',
         "exactly old and new"),
        ('name = "a"\ncomment = "c"\nbase = "later"\n', "base 'later'"),
        ('name = "a"\ncomment = "c"\nnotes = "nowhere"\nlayout = "workbook"\n', "notes 'nowhere'"),
        ('name = "a"\ncomment = "c"\nnotes = "one\\ntwo\\n"\n', "layout"),
        ('name = "a"\ncomment = "c"\nlayout = "workbook"\n[example.files]\n"../out.py" = "x"\n', "relative path"),
        ('name = "a"\ncomment = "c"\ncolour = "red"\n', "unknown fields"),
        ('name = "a"\n', "needs a name and a comment"),
    ],
    ids=["key-below-edit", "unknown-base", "unknown-notes", "notes-need-workbook", "file-outside", "unknown-field", "no-comment"],
)
def test_a_malformed_example_is_reported(tmp_path: Path, entry: str, message: str) -> None:
    folder = _edits_file(tmp_path, "[[example]]\n" + entry)
    with pytest.raises(ExampleError, match=message):
        load_edited(folder / "edits.toml")


def test_an_example_both_edited_and_stored_is_an_error(tmp_path: Path) -> None:
    folder = _edits_file(tmp_path, '[[example]]\nname = "twice"\ncomment = "c"\n')
    (folder / "twice.py").write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(ExampleError, match="twice"):
        materialize(tmp_path / "out", folder=folder, edits_file=folder / "edits.toml")


def test_no_example_is_a_copy_of_the_reference_or_the_stubs() -> None:
    reference, stubs = REFERENCE.read_text(encoding="utf-8"), STUBS.read_text(encoding="utf-8")
    checked, copies = 0, []
    for path in sorted(EXAMPLES.rglob("*.py")):
        if path.is_symlink():
            continue  # a link is no copy (symlink_solutions): the grader never follows it
        text = path.read_text(encoding="utf-8")
        checked += 1
        for label, original in (("the reference", reference), ("the stubs", stubs)):
            common = common_lines(original, text)
            if common > MAX_COMMON_LINES:
                copies.append(f"{path.relative_to(EXAMPLES)}: {common} lines in common with {label}")
    assert checked, "no example file was checked"
    assert copies == [], "write these as edits in tools/grading/examples/edits.toml:\n" + "\n".join(copies)


def test_the_copy_check_catches_a_copy() -> None:
    reference = REFERENCE.read_text(encoding="utf-8")
    assert common_lines(reference, reference.replace("torch.zeros(", "torch.ones(")) > MAX_COMMON_LINES
    assert common_lines(reference, STUBS.read_text(encoding="utf-8")) > MAX_COMMON_LINES
