"""From the output folder to the LMS: who each submission is (the roster), the instructor's review, the exports.

    OUT/roster.csv      GitHub Classroom's roster export (identifier, github_username, github_id, name),
                        copied here by `grade --roster FILE`
    OUT/overrides.toml  the instructor's review, one table per submission (its folder's name):
                            [kenji]
                            approve = true                # release a withheld grade as computed
                            reason = "the finding is a docstring that quotes the rule"
                            [ana]
                            score = 80                    # the final score instead of the computed one
                            reason = "regrade request #12: ..."
    OUT/canvas.csv      Canvas's gradebook import: Student, ID, SIS User ID, SIS Login ID, Section, the lab
    OUT/moodle.csv      Moodle's CSV grade import: identifier, grade, feedback

A submission folder belongs to the rostered student whose GitHub username it is, or ends with after a
hyphen ("lab00-kenji" is kenji's, as GitHub Classroom names the repositories it collects); the longest
such username wins. result.json always keeps the computed grade; the final score is the override's, or
the computed total, or blank while a grade is withheld and not approved. A rostered student with no
submission gets a blank in the exports (nothing was handed in to grade, and a blank does not overwrite
what the LMS may hold: an extension, an excuse); the summary lists them.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labkit.core.tomlread import read_toml
from labkit.grading.grader import Grade
from minituner.i18n import tr

ROSTER_FILE = "roster.csv"
OVERRIDES_FILE = "overrides.toml"
ROSTER_COLUMNS = ("identifier", "github_username", "github_id", "name")


class ReviewError(Exception):
    """A roster or an overrides file that cannot be used: it says which file, which entry, and why (in the lang asked)."""


@dataclass(frozen=True)
class Student:
    identifier: str  # what the LMS knows the student by (a login, an email, a student number)
    github_username: str
    github_id: str
    name: str


@dataclass(frozen=True)
class Override:
    reason: str
    score: float | None = None  # None: approve the computed grade


def read_roster(path: Path, lang: str = "en") -> list[Student]:
    """The students of a GitHub Classroom roster export; ReviewError naming what is wrong (in lang)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReviewError(tr(lang, "{file}: cannot be read as UTF-8 text ({error})").format(file=path, error=exc)) from None
    return read_roster_text(text, str(path), lang)


def read_roster_text(text: str, where: str | None = None, lang: str = "en") -> list[Student]:
    """The students of a roster's text; where names it in a ReviewError (by default "the roster", in lang)."""
    # i18n: stands for a roster's file name at the start of a message ("the roster: not a CSV file ...")
    where = tr(lang, "the roster") if where is None else where
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
    except csv.Error as exc:
        raise ReviewError(tr(lang, "{file}: not a CSV file ({error})").format(file=where, error=exc)) from None
    missing = [c for c in ROSTER_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ReviewError(tr(lang, "{file}: GitHub Classroom's roster has the columns {columns}; missing: {missing}").format(
            file=where, columns=", ".join(ROSTER_COLUMNS), missing=", ".join(missing)))  # fmt: skip
    students: list[Student] = []
    seen: set[str] = set()
    for row in rows:
        student = Student(*(str(row[c] or "").strip() for c in ROSTER_COLUMNS))
        if not student.identifier:
            raise ReviewError(tr(lang, "{file}: row {row}: a student without an identifier").format(
                file=where, row=len(students) + 1))  # fmt: skip
        if student.identifier in seen:
            raise ReviewError(tr(lang, "{file}: {identifier} is in the roster twice").format(
                file=where, identifier=student.identifier))  # fmt: skip
        seen.add(student.identifier)
        students.append(student)
    return students


def match_students(names: Sequence[str], roster: Sequence[Student], lang: str = "en") -> dict[str, Student]:
    """Submission name -> its student: the GitHub username it is, or ends with after a hyphen (longest wins)."""
    found = {}
    for name in names:
        lower = name.lower()
        candidates = [s for s in roster if s.github_username and
                      (lower == s.github_username.lower() or lower.endswith("-" + s.github_username.lower()))]  # fmt: skip
        if candidates:
            found[name] = max(candidates, key=lambda s: len(s.github_username))
    claimed: dict[str, list[str]] = {}
    for name, student in found.items():
        claimed.setdefault(student.identifier, []).append(name)
    twice = {ident: names for ident, names in claimed.items() if len(names) > 1}
    if twice:  # never credit one of them silently
        ident, names = next(iter(sorted(twice.items())))
        *others, last = sorted(names)
        raise ReviewError(tr(lang, "{first} and {second} both belong to {identifier} by the roster: keep one of them in "
                          "the class (or rename the other so that it matches no rostered student)").format(
                              first=", ".join(others), second=last, identifier=ident))  # fmt: skip
    return found


def read_overrides(path: Path, grades: Mapping[str, Grade], lang: str = "en") -> dict[str, Override]:
    """The review in path (none when it does not exist), checked against the class's grades; ReviewError in lang."""
    if not path.exists():
        return {}
    try:
        data = read_toml(path)
    except (OSError, ValueError) as exc:
        raise ReviewError(tr(lang, "{file}: not valid TOML ({error})").format(file=path, error=exc)) from None
    overrides = {}
    for name, entry in data.items():
        where = f"{path}: [{name}]"
        if name not in grades:
            raise ReviewError(tr(lang, "{entry} is not a submission of this class with a result").format(entry=where))
        if not isinstance(entry, dict) or set(entry) - {"approve", "score", "reason"}:
            raise ReviewError(tr(lang, "{entry} takes reason, and approve = true or score = a number").format(entry=where))
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ReviewError(tr(lang, "{entry} needs a reason (a non-empty string): a changed grade must be "
                                 "defensible").format(entry=where))  # fmt: skip
        score, approve = entry.get("score"), entry.get("approve")
        if score is not None and approve is not None:
            raise ReviewError(tr(lang, "{entry} takes either approve = true or score = a number, not both").format(
                entry=where))  # fmt: skip
        if score is None and approve is None:
            raise ReviewError(tr(lang, "{entry} takes approve = true or score = a number, and has neither").format(
                entry=where))  # fmt: skip
        if approve is not None and approve is not True:
            raise ReviewError(tr(lang, "{entry}: approve must be true (leave it out to keep a grade withheld)").format(
                entry=where))  # fmt: skip
        maximum = grades[name].max_points
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                                  or not math.isfinite(score) or not 0 <= score <= maximum):  # fmt: skip
            raise ReviewError(tr(lang, "{entry}: score must be a number from 0 to {max:g}, got {score}").format(
                entry=where, max=maximum, score=repr(score)))  # fmt: skip
        overrides[name] = Override(reason.strip(), None if score is None else float(score))
    return overrides


def final_score(grade: Grade, override: Override | None) -> float | None:
    """The score that goes to the LMS: the override's, or the computed one unless withheld and not approved."""
    if override is not None:
        return grade.points if override.score is None else override.score
    return None if grade.withheld else grade.points


def _feedback(grade: Grade, override: Override | None, lang: str) -> str:
    """Moodle's feedback for a grade, in lang: the points of each part, and why an override changed them."""
    parts = [(b.id, b.points, b.max_points) for b in grade.blocks]
    # i18n: two parts of a grade in Moodle's feedback, as "type check 5/5, notes 5/5"
    parts += [(tr(lang, "type check"), grade.typecheck.points, grade.typecheck.max_points),
              (tr(lang, "notes"), grade.notes.points, grade.notes.max_points)]  # fmt: skip
    text = ", ".join(f"{label} {points:g}/{maximum:g}" for label, points, maximum in parts)
    if override is not None and override.score is not None:
        # i18n: {points} is the list of points per part ("A 24/24, B 18/21, ..., notes 5/5")
        text = tr(lang, "{points}; set to {score:g} by the instructor: {reason}").format(
            points=text, score=override.score, reason=override.reason)  # fmt: skip
    return tr(lang, "{points} (details: feedback.md)").format(points=text)


def exports(grades: Sequence[Grade], students: Mapping[str, Student], roster: Sequence[Student],
            overrides: Mapping[str, Override], title: str, max_points: float, lang: str = "en") -> dict[str, str]:  # fmt: skip
    """canvas.csv and moodle.csv: a row per rostered student, blank where there is no final score.

    Their columns are what Canvas and Moodle import (in English); Moodle's feedback is in lang.
    """
    by_student = {students[g.name].identifier: g for g in grades if g.name in students}
    canvas, moodle = io.StringIO(newline=""), io.StringIO(newline="")
    canvas_rows, moodle_rows = csv.writer(canvas), csv.writer(moodle)
    canvas_rows.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", title])
    canvas_rows.writerow(["Points Possible", "", "", "", "", f"{max_points:g}"])
    moodle_rows.writerow(["identifier", "grade", "feedback"])
    for student in sorted(roster, key=lambda s: (s.name.lower(), s.identifier)):
        grade = by_student.get(student.identifier)
        score = None if grade is None else final_score(grade, overrides.get(grade.name))
        shown = "" if score is None else f"{score:g}"
        canvas_rows.writerow([student.name, "", "", student.identifier, "", shown])
        feedback = "" if grade is None or score is None else _feedback(grade, overrides.get(grade.name), lang)
        moodle_rows.writerow([student.identifier, shown, feedback])
    return {"canvas.csv": canvas.getvalue(), "moodle.csv": moodle.getvalue()}
