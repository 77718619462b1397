"""Grades into the LMS (labkit.grading.lms): the roster, the instructor's review, canvas.csv and moodle.csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from labkit.core.labinfo import load_lab
from labkit.grading import grade as grade_cli
from labkit.grading import lms, results
from labkit.grading.grader import BlockGrade, Grade, ItemGrade

ROSTER = """identifier,github_username,github_id,name
ana@uni.edu,Ana,101,Ana Ruiz
ann@uni.edu,ann,102,Ann Lee
leeann@uni.edu,lee-ann,103,Lee-Ann Park
ben@uni.edu,ben,104,Ben Li
zoe@uni.edu,zoe,105,Zoe Zhang
"""


def _grade(name: str, points: float, withheld: bool = False) -> Grade:
    """A grade whose blocks hold points (in block A; the rest full when points allow)."""
    lab = load_lab()
    blocks = [BlockGrade(b.id, b.title["en"], b.points, b.points, 1, 1, "done") for b in lab.blocks]
    blocks[0].points = points - sum(b.points for b in blocks[1:]) - lab.typecheck.points - lab.notes.points
    finding: dict[str, object] = {"line": 3, "code": "dunder", "text": {"en": "line 3: x", "es": "línea 3: x"}}
    violations = [finding] if withheld else []
    return Grade(name, blocks, ItemGrade(lab.typecheck.points, lab.typecheck.points, True, ""),
                 ItemGrade(lab.notes.points, lab.notes.points, True, ""), {}, 1.0, violations=violations,
                 audit={"seed": 1})  # fmt: skip


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An output folder: ana (90), lab00-lee-ann (80, withheld), lab00-ben (70), and stray (no rostered student)."""
    out = tmp_path / "grades"
    grades = [_grade("ana", 90), _grade("lab00-lee-ann", 80, withheld=True), _grade("lab00-ben", 70), _grade("stray", 60)]
    results.write_results(grades, out, "en")
    results.write_class(out, results.ClassList(tuple(g.name for g in grades)))
    (out / lms.ROSTER_FILE).write_text(ROSTER, encoding="utf-8")
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_submissions_are_matched_to_rostered_students() -> None:
    roster = lms.read_roster_text(ROSTER)
    found = lms.match_students(["ana", "lab00-lee-ann", "LAB00-BEN", "lab00-kenji", "zoey"], roster)
    assert {name: s.identifier for name, s in found.items()} == {
        "ana": "ana@uni.edu",  # GitHub usernames are case-insensitive
        "lab00-lee-ann": "leeann@uni.edu",  # the longest username it ends with, not "ann"
        "LAB00-BEN": "ben@uni.edu",
    }


def test_exports_hold_the_final_scores(folder: Path) -> None:
    book = results.rebuild(folder)
    canvas = (folder / "canvas.csv").read_text(encoding="utf-8").splitlines()
    assert canvas[:2] == ["Student,ID,SIS User ID,SIS Login ID,Section,Lab 00: LoRA by hand", "Points Possible,,,,,100"]
    scores = {row["identifier"]: row["grade"] for row in _csv(folder / "moodle.csv")}
    # The withheld grade stays blank until approved; a rostered student with no submission is blank too.
    assert scores == {"ana@uni.edu": "90", "ann@uni.edu": "", "leeann@uni.edu": "", "ben@uni.edu": "70", "zoe@uni.edu": ""}
    assert book.unrostered == ["stray"] and book.absent == ["Ann Lee", "Zoe Zhang"]
    summary = (folder / "summary.md").read_text(encoding="utf-8")
    assert "Rostered, no submission" in summary and "Submissions of no rostered student" in summary

    (folder / lms.OVERRIDES_FILE).write_text('["lab00-lee-ann"]\napprove = true\nreason = "the finding is a quote"\n'
                                             '["lab00-ben"]\nscore = 75.5\nreason = "regrade request 12"\n', encoding="utf-8")  # fmt: skip
    results.rebuild(folder)
    scores = {row["identifier"]: row["grade"] for row in _csv(folder / "moodle.csv")}
    assert scores["leeann@uni.edu"] == "80" and scores["ben@uni.edu"] == "75.5"
    ben = next(r for r in _csv(folder / "gradebook.csv") if r["submission"] == "lab00-ben")
    assert (ben["total"], ben["final"], ben["override"], ben["override_reason"], ben["name"]) == (
        "70", "75.5", "75.5", "regrade request 12", "Ben Li")
    computed = json.loads((folder / "lab00-ben" / "result.json").read_text(encoding="utf-8"))
    assert computed["points"] == 70, "result.json keeps the computed grade"
    feedback = next(r for r in _csv(folder / "moodle.csv") if r["identifier"] == "ben@uni.edu")["feedback"]
    assert "set to 75.5 by the instructor: regrade request 12" in feedback


@pytest.mark.parametrize(("review", "said"), [
    ('[kenji]\napprove = true\nreason = "x"\n', "[kenji] is not a submission of this class"),
    ('[ana]\napprove = true\n', "[ana] needs a reason"),
    ('[ana]\nscore = 50\napprove = true\nreason = "x"\n', "not both"),
    ('[ana]\nreason = "x"\n', "and has neither"),
    ('[ana]\napprove = false\nreason = "x"\n', "approve must be true"),
    ('[ana]\nscore = 101\nreason = "x"\n', "score must be a number from 0 to 100"),
    ('[ana]\nscore = true\nreason = "x"\n', "score must be a number"),
    ('[ana]\ngrade = 5\nreason = "x"\n', "takes reason, and approve = true or score"),
    ('[ana\n', "not valid TOML"),
])  # fmt: skip
def test_a_bad_review_is_refused_by_name(folder: Path, review: str, said: str, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / lms.OVERRIDES_FILE).write_text(review, encoding="utf-8")
    with pytest.raises(lms.ReviewError) as caught:
        results.rebuild(folder)
    assert said in str(caught.value), caught.value
    assert grade_cli.main(["--merge", str(folder), "--out", str(folder)]) == 2 and said in capsys.readouterr().err


def test_a_bad_roster_is_refused(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "roster.csv"
    bad.write_text("identifier,name\nana@uni.edu,Ana\n", encoding="utf-8")
    assert grade_cli.main(["--merge", str(folder), "--out", str(folder), "--roster", str(bad)]) == 2
    assert "missing: github_username, github_id" in capsys.readouterr().err
    bad.write_text("identifier,github_username,github_id,name\n,ana,1,Ana\n", encoding="utf-8")
    with pytest.raises(lms.ReviewError, match="without an identifier"):
        lms.read_roster(bad)
    bad.write_text("identifier,github_username,github_id,name\na@x,ana,1,Ana\na@x,anna,2,Anna\n", encoding="utf-8")
    with pytest.raises(lms.ReviewError, match="a@x is in the roster twice"):
        lms.read_roster(bad)


def test_two_submissions_of_one_student_are_refused() -> None:
    # "lab00-ann-lee" ends with "-lee": with no rostered ann-lee, it and lab00-lee would both be lee's.
    roster = lms.read_roster_text("identifier,github_username,github_id,name\nlee@x,lee,1,Lee\n")
    with pytest.raises(lms.ReviewError, match="lab00-ann-lee and lab00-lee both belong to lee@x"):
        lms.match_students(["lab00-ann-lee", "lab00-lee"], roster)
