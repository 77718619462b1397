"""The output folder of `grade`: a result per submission, the class it belongs to, and the gradebook.

    OUT/class.json            the class graded into OUT: its submissions' names and the shard (I/N) it is
    OUT/<name>/result.json    a submission's grade with its audit record; written last, it says the grade is done
    OUT/<name>/feedback.md    what the student reads
    OUT/gradebook.csv         a row per submission of the class that has a result
    OUT/summary.md            the class's item analysis, and what is missing or left out

Every file is written whole or not at all (write_atomic), a result as soon as its submission is
graded, so a crash or a kill loses nothing finished. The gradebook and the summary are rebuilt from
the results on disk at the end of every run and every merge (rebuild): a run that graded one student
changes that student's row only. A result is current for a submission when it was made from the
same files (their sha256) with the same settings (grader.SETTING_KEYS); a later run keeps current
results and grades the rest, which is how an interrupted class is resumed. Results of names that
are not in class.json are stale: reported and left out of the gradebook, never silently counted.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labkit.core.labinfo import load_lab
from labkit.grading import lms
from labkit.grading.feedback import feedback_markdown, violation_line
from labkit.grading.grader import SETTING_KEYS, Grade, file_sha256, grade_from_json
from labkit.grading.submission import Submission
from minituner.i18n import tr

CLASS_FILE = "class.json"
RESULT_FILE = "result.json"
LOCK_FILE = ".grade.lock"
#: The output folder's own files: no submission may be named like one (its result folder would clash).
RESERVED_NAMES = frozenset({CLASS_FILE, "gradebook.csv", "summary.md", "overrides.toml", "roster.csv", "canvas.csv", "moodle.csv"})
#: A temporary file of write_atomic older than this was left by a killed run (a write takes milliseconds).
LEFT_TMP_S = 60.0


class ResultsError(Exception):
    """An output folder that cannot be used as asked (a merge that would be wrong, a folder in use), said in the lang asked."""


@dataclass(frozen=True)
class ClassList:
    """Who is in the class graded into a folder, and which shard of it (None: all of it)."""

    submissions: tuple[str, ...]
    shard: str | None = None
    whole: tuple[str, ...] = ()  # a shard's: the names of the whole class it was cut from


def write_atomic(path: Path, text: str) -> None:
    """Write text to path whole or not at all: a temporary file beside it, then a rename.

    A kill at any moment leaves either the old file or the new one, never half of one.
    """
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", dir=path.parent, prefix=f".{path.name}.",
                                     suffix=".tmp", delete=False) as fh:  # fmt: skip
        try:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            os.unlink(fh.name)
            raise
    try:
        os.chmod(fh.name, 0o644)  # as a plain write would leave it (a temporary file starts private)
        os.replace(fh.name, path)
    except BaseException:
        os.unlink(fh.name)
        raise


@contextlib.contextmanager
def locked(out: Path, lang: str = "en") -> Iterator[None]:
    """Hold out for this process: a second `grade` writing to the same folder is refused (in lang), not interleaved.

    The lock is the kernel's (flock): it goes with the process, however it ends, a SIGKILL included.
    """
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK_FILE, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResultsError(tr(lang, "{folder} is in use by another grade run; wait for it to end, or use another --out")
                               .format(folder=out)) from None  # fmt: skip
        yield


def write_results(grades: Sequence[Grade], out: Path, lang: str) -> None:
    """Each grade's feedback.md and result.json in out/<name>/, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    for grade in grades:
        folder = out / grade.name
        folder.mkdir(exist_ok=True)
        write_atomic(folder / "feedback.md", feedback_markdown(grade, lang))
        write_atomic(folder / RESULT_FILE, json.dumps(grade.to_json(), indent=1))  # last: it says the grade is done


def read_class(out: Path, lang: str = "en") -> ClassList | None:
    """The class recorded in out, or None when out holds none; ResultsError (in lang) when it cannot be read."""
    try:
        data = json.loads((out / CLASS_FILE).read_text(encoding="utf-8"))
        return ClassList(tuple(str(n) for n in data["submissions"]), data.get("shard"), tuple(data.get("whole", ())))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResultsError(tr(lang, "{file} cannot be read ({error}); delete it and grade the class again").format(
            file=out / CLASS_FILE, error=exc)) from None  # fmt: skip


def write_class(out: Path, listing: ClassList) -> None:
    out.mkdir(parents=True, exist_ok=True)
    data = {"submissions": sorted(listing.submissions), "shard": listing.shard, "whole": sorted(listing.whole)}
    write_atomic(out / CLASS_FILE, json.dumps(data, indent=1))


def read_results(out: Path) -> tuple[dict[str, Grade], list[str]]:
    """The results in out by name, and the names whose result.json cannot be read (they count as missing)."""
    results: dict[str, Grade] = {}
    unreadable: list[str] = []
    for path in sorted(out.glob(f"*/{RESULT_FILE}")):
        try:
            results[path.parent.name] = grade_from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            unreadable.append(path.parent.name)
    return results, unreadable


def settings_of(grade: Grade) -> dict[str, object]:
    return {key: grade.audit.get(key) for key in SETTING_KEYS}


def is_current(grade: Grade, submission: Submission, settings: Mapping[str, object]) -> bool:
    """Whether grade is what grading submission now would give: same files, same settings, no grader error."""
    audit = grade.audit
    return (
        bool(audit)
        and not any(v.get("code") == "grader" for v in grade.violations)
        and settings_of(grade) == dict(settings)
        and audit.get("lora_sha256") == file_sha256(submission.lora)
        and audit.get("notes_sha256") == file_sha256(submission.notes)
    )


@dataclass(frozen=True)
class Gradebook:
    """What rebuild put in the gradebook, and what it left out."""

    graded: list[Grade]  # the class's results, by name
    missing: list[str]  # in the class, no (readable) result yet
    stale: list[str]  # a result, but not in the class
    unrostered: list[str] = field(default_factory=list)  # with a roster: submissions of no rostered student
    absent: list[str] = field(default_factory=list)  # with a roster: rostered students with no submission


def rebuild(out: Path, lang: str = "en") -> Gradebook:
    """Rewrite out's gradebook.csv and summary.md from the results on disk, for the class in class.json.

    summary.md, Moodle's feedback and the errors are in lang; gradebook.csv is in English (it is for
    programs). Also removes what a killed run's write_atomic may have left (its temporary files).
    """
    for left in [*out.glob(".*.tmp"), *out.glob("*/.*.tmp")]:
        with contextlib.suppress(OSError):
            if time.time() - left.stat().st_mtime > LEFT_TMP_S:
                left.unlink()
    listing = read_class(out, lang) or ClassList(())
    results, _ = read_results(out)
    members = set(listing.submissions)
    graded = [results[name] for name in sorted(members & set(results))]
    roster = lms.read_roster(out / lms.ROSTER_FILE, lang) if (out / lms.ROSTER_FILE).exists() else []
    students = lms.match_students(sorted(members), roster, lang)
    overrides = lms.read_overrides(out / lms.OVERRIDES_FILE, {g.name: g for g in graded}, lang)
    handed_in = {s.identifier for s in students.values()}
    book = Gradebook(
        graded=graded,
        missing=sorted(members - set(results)),
        stale=sorted(set(results) - members),
        unrostered=sorted(members - set(students)) if roster else [],
        absent=sorted(s.name or s.identifier for s in roster if s.identifier not in handed_in),
    )
    write_atomic(out / "gradebook.csv", gradebook_csv(book.graded, overrides, students))
    write_atomic(out / "summary.md", summary_markdown(book, lang))
    if roster:
        lab = load_lab()
        max_points = lab.total_points
        for name, text in lms.exports(graded, students, roster, overrides, lab.title["en"], max_points, lang).items():
            write_atomic(out / name, text)
    return book


def gradebook_csv(grades: Sequence[Grade], overrides: Mapping[str, lms.Override] | None = None,
                  students: Mapping[str, lms.Student] | None = None) -> str:  # fmt: skip
    """A row per grade: the computed points, then the final score and the review, then who it is (with a roster)."""
    lab, overrides, students = load_lab(), overrides or {}, students or {}
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["submission", *(f"block_{b.id}" for b in lab.blocks), "typecheck", "notes", "total", "max",
                     "withheld_for_review", "problem", "final", "override", "override_reason", "identifier",
                     "github_username", "name"])  # fmt: skip
    for g in sorted(grades, key=lambda g: g.name):
        review = "; ".join(violation_line(v, "en") for v in g.violations)
        override, student = overrides.get(g.name), students.get(g.name)
        final = lms.final_score(g, override)
        shown = "" if override is None else ("approved" if override.score is None else f"{override.score:g}")
        writer.writerow([g.name, *(f"{b.points:g}" for b in g.blocks), f"{g.typecheck.points:g}",
                         f"{g.notes.points:g}", f"{g.points:g}", f"{g.max_points:g}", review[:500],
                         "; ".join([g.problem.get("en", "").split("\n")[0], *(n["en"] for n in g.notices)]).strip("; "),
                         "" if final is None else f"{final:g}", shown, override.reason if override else "",
                         *((student.identifier, student.github_username, student.name) if student else ("", "", ""))])  # fmt: skip
    return table.getvalue()


def summary_markdown(book: Gradebook, lang: str = "en") -> str:
    """Item analysis: how the class did on each test, and the failure messages seen most (in lang).

    Tests that did not run because their block is not started (its stub still raises
    NotImplementedError) are counted apart, so the most common failures are real mistakes.
    """
    grades = book.graded
    title = tr(lang, "Class summary")
    lines = [f"# {title}", "", tr(lang, "{count} submissions graded.").format(count=len(grades))]
    if book.missing:
        lines.append(tr(lang, "Not graded yet ({count}; run the same grade command again): {names}.").format(
            count=len(book.missing), names=", ".join(book.missing)))  # fmt: skip
    if book.stale:
        lines.append(tr(lang, "Left out, not in this class ({count}): {names}.").format(
            count=len(book.stale), names=", ".join(book.stale)))  # fmt: skip
    if book.absent:
        lines.append(tr(lang, "Rostered, no submission (blank in canvas.csv and moodle.csv) ({count}): {names}.").format(
            count=len(book.absent), names=", ".join(book.absent)))  # fmt: skip
    if book.unrostered:
        lines.append(tr(lang, "Submissions of no rostered student (not in the exports) ({count}): {names}.").format(
            count=len(book.unrostered), names=", ".join(book.unrostered)))  # fmt: skip
    if grades:
        totals = sorted(g.points for g in grades)
        lines.append(tr(lang, "Total points: min {min:g}, median {median:g}, max {max:g}.").format(
            min=totals[0], median=totals[len(totals) // 2], max=totals[-1]))  # fmt: skip
    # i18n: the heads of the table of tests: a test, how many passed it, how many had its block not started, the rate
    cols = (tr(lang, "test"), tr(lang, "passed"), tr(lang, "not started"), tr(lang, "rate"))
    pass_rate = tr(lang, "Pass rate per test")
    lines += ["", f"## {pass_rate}", "", f"| {cols[0]} | {cols[1]} | {cols[2]} | {cols[3]} |", "|---|---|---|---|"]
    names = [t.name for t in max(grades, key=lambda g: len(g.tests)).tests] if grades else []  # not a grader error's
    for i, name in enumerate(names):
        outcomes = [g.tests[i] for g in grades if i < len(g.tests)]
        passed = sum(t.outcome == "passed" for t in outcomes)
        stub = sum(t.exc_type == "NotImplementedError" for t in outcomes)
        lines.append(f"| `{name}` | {passed} / {len(grades)} | {stub} | {100 * passed / len(grades):.0f} % |")
    messages = Counter(
        f"{t.name}: {(t.message.strip().splitlines() or [''])[0][:160]}"
        for g in grades
        if not g.problem
        for t in g.tests
        if t.outcome != "passed" and t.exc_type != "NotImplementedError"
    )
    ungraded = [g.name for g in grades if g.problem]
    common = tr(lang, "Most common failure messages")
    # i18n: {ungraded} is how many submissions could not be graded, then their names: "2: ana, ben" (or "0")
    counted = tr(lang, "Not counting the tests of blocks not started (NotImplementedError) nor those of submissions "
                 "that could not be graded at all ({ungraded}; their feedback says why).").format(
                     ungraded=f"{len(ungraded)}: {', '.join(ungraded)}" if ungraded else "0")  # fmt: skip
    # i18n: the heads of the table of failure messages: how many times, and the test with its message's first line
    heads = (tr(lang, "count"), tr(lang, "test: first line of the message"))
    lines += ["", f"## {common}", "", counted, "", f"| {heads[0]} | {heads[1]} |", "|---|---|"]
    lines += [f"| {count} | {text.replace('|', '/')} |" for text, count in messages.most_common(15)]
    return "\n".join(lines) + "\n"


def merge(folders: Sequence[Path], out: Path, lang: str, roster: str | None = None) -> Gradebook:
    """Put the results of several shards' (or sections') output folders into out, then rebuild it.

    Refused (ResultsError), with nothing written, when the merge would be wrong: a folder missing,
    given twice or not written by grade; a submission in two folders or without its result yet;
    shards that are not exactly 1/N..N/N; results made with different settings. roster, when given,
    is the text of a checked roster, written into out once the merge is known to be right.
    """
    parts = [(folder, _merge_part(folder, lang)) for folder in folders]
    seen: dict[Path, Path] = {}
    for folder, _ in parts:
        if folder.resolve() in seen:
            raise ResultsError(tr(lang, "{folder} is given twice (as {other} too)").format(
                folder=folder, other=seen[folder.resolve()]))  # fmt: skip
        seen[folder.resolve()] = folder
    owner: dict[str, Path] = {}
    for folder, (listing, _) in parts:
        for name in listing.submissions:
            if name in owner:
                raise ResultsError(tr(lang, "{name} is in both {first} and {second}: a submission belongs to one shard")
                                   .format(name=name, first=owner[name], second=folder))  # fmt: skip
            owner[name] = folder
    _check_shards([(folder, listing.shard) for folder, (listing, _) in parts], lang)
    wholes = {listing.whole for _, (listing, _) in parts if listing.shard}
    if len(wholes) > 1 or (wholes and set(next(iter(wholes))) != set(owner)):
        raise ResultsError(tr(lang, "the shards were cut from different classes (a submission was added or removed "
                              "between their runs): grade every shard again from the same class"))  # fmt: skip
    grades = [grade for _, (_, part) in parts for grade in part]
    settings = [(folder, settings_of(g), g.name) for folder, (_, part) in parts for g in part]
    for folder, found, name in settings[1:]:
        first_folder, first, first_name = settings[0]
        for key in SETTING_KEYS:
            if found[key] != first[key]:
                raise ResultsError(tr(lang, "{result} was graded with {setting} = {value}, {first} with {first_value}: "
                                      "grade every shard with the same settings").format(
                    result=f"{folder}/{name}", setting=key, value=repr(found[key]), first=f"{first_folder}/{first_name}",
                    first_value=repr(first[key])))  # fmt: skip
    if roster is not None:
        write_atomic(out / lms.ROSTER_FILE, roster)
    write_results(grades, out, lang)
    write_class(out, ClassList(tuple(sorted(owner))))
    return rebuild(out, lang)


def _merge_part(folder: Path, lang: str) -> tuple[ClassList, list[Grade]]:
    """A folder's class and its results, or why it cannot be merged (in lang)."""
    if not folder.is_dir():
        raise ResultsError(tr(lang, "{folder} is not a folder").format(folder=folder))
    listing = read_class(folder, lang)
    if listing is None:
        raise ResultsError(tr(lang, "{folder} has no {file}: it is not an output folder of grade (or an older grade "
                              "wrote it; grade it again)").format(folder=folder, file=CLASS_FILE))  # fmt: skip
    results, _ = read_results(folder)
    missing = [name for name in listing.submissions if name not in results]
    if missing:
        raise ResultsError(tr(lang, "{folder}: {count} submission(s) of its class have no result yet ({names}): run its "
                              "grade command again to finish it").format(
                                  folder=folder, count=len(missing), names=", ".join(missing[:5])))  # fmt: skip
    unaudited = [name for name in listing.submissions if not results[name].audit]
    if unaudited:
        raise ResultsError(tr(lang, "{folder}: the results of {names} have no audit record (an older grade made them): "
                              "grade them again").format(folder=folder, names=", ".join(unaudited[:5])))  # fmt: skip
    return listing, [results[name] for name in listing.submissions]


def _check_shards(shards: Sequence[tuple[Path, str | None]], lang: str) -> None:
    """Sharded folders must be every shard of one split, once each; unsharded ones may be merged freely."""
    sharded = [(folder, spec) for folder, spec in shards if spec]
    if not sharded:
        return
    if len(sharded) != len(shards):
        plain = next(folder for folder, spec in shards if not spec)
        raise ResultsError(tr(lang, "{folder} holds a whole class and the others hold shards of one: merge the shards only").format(
            folder=plain))  # fmt: skip
    counts = {spec.split("/")[1] for _, spec in sharded}
    if len(counts) > 1:
        raise ResultsError(tr(lang, "the folders are shards of different splits ({shards})").format(
            shards=", ".join(spec for _, spec in sharded)))  # fmt: skip
    total = int(counts.pop())
    have = Counter(int(spec.split("/")[0]) for _, spec in sharded)
    twice = [f"{i}/{total}" for i, c in sorted(have.items()) if c > 1]
    if twice:
        raise ResultsError(tr(lang, "shard {shards} is given more than once").format(shards=", ".join(twice)))
    absent = [f"{i}/{total}" for i in range(1, total + 1) if i not in have]
    if absent:
        raise ResultsError(tr(lang, "shard {shards} is missing: merge the folders of all {count} shards").format(
            shards=", ".join(absent), count=total))  # fmt: skip
