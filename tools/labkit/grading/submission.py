"""Finding a submission's files, and reading them without ever following them.

A submission is a bare lora.py, or a directory laid out like the workbook (a whole clone of it, as
GitHub Classroom collects, is fine) or holding lora.py at its top, with an optional notes file. Of a
directory only those two files are looked at, like a grader collecting what it grades: nothing else
in it is opened, listed or followed. Each is reached without following a link on the way (lstat,
component by component) and read as bytes, never executed here, never followed. A link as one of
those two files or on the way to one, a lora.py that is a directory, a file that is not UTF-8 text
or is over the size cap, is a problem that the grade reports (with 0 points), and nothing outside
the submission is ever opened.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from labkit.core.labinfo import Lab
from minituner.i18n import LANGUAGES, tr

MAX_SOURCE_BYTES = 256 * 1024  # a lora.py; the reference is about 10 KiB
MAX_NOTES_BYTES = 64 * 1024


@dataclass(frozen=True)
class Submission:
    name: str
    lora: Path | None  # None when the submission has no lora.py at all
    notes: Path | None
    problem: dict[str, str] = field(default_factory=dict)  # why it cannot be graded, by language


def find_submission(path: Path, lab: Lab) -> Submission:
    """The submission at path: its lora.py and notes file, or the problem that stops its grading."""
    path = Path(path)
    name = path.parent.name if path.name == "lora.py" else (path.stem if path.suffix == ".py" else path.name)
    if path.is_symlink():
        return Submission(name, None, None, _linked(path.name))
    if path.is_file():
        beside = path.parent / Path(lab.notes_path).name
        return Submission(name, path, beside if _regular(beside) else None)
    found = [_inside(path, rel) for rel in (lab.submission, "lora.py", lab.notes_path, Path(lab.notes_path).name)]
    problem = next((problem for _, problem in found if problem), None)
    if problem is not None:
        return Submission(name, None, None, problem)
    lora = found[0][0] or found[1][0]
    if lora is not None and not _regular(lora):
        where = lora.relative_to(path)
        if lora.is_dir():
            return Submission(name, None, None, said("{where} is a directory", where=where))
        return Submission(name, None, None, said("{where} is not a regular file", where=where))
    notes = next((p for p, _ in found[2:] if p is not None and _regular(p)), None)
    return Submission(name, lora, notes)


def _inside(root: Path, rel: str) -> tuple[Path | None, dict[str, str]]:
    """root / rel, reached without following a link: (its path, {}) when it exists, (None, {}) when it
    does not, (None, problem) when it or a folder on the way is a symbolic link."""
    current = root
    for part in Path(rel).parts:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except OSError:
            return None, {}
        if stat.S_ISLNK(mode):
            return None, _linked(current.relative_to(root))
    return current, {}


def said(message: str, **fields: object) -> dict[str, str]:
    """A message of the grader's in every language: message (English, as the code writes it) through
    the catalog, then its {fields} filled in. Its own text only, as a literal at the call: what is not
    a message (a path, an error, a traceback) goes in a field."""
    return {lang: tr(lang, message).format(**fields) for lang in LANGUAGES}


def _linked(where: object) -> dict[str, str]:
    return said("{where} is a symbolic link: submissions are read, never followed", where=where)


def holds_lora(directory: Path, lab: Lab) -> bool:
    """Whether directory is one submission (it has a lora.py, of whatever kind) rather than a class."""
    return any(os.path.lexists(directory / rel) for rel in (lab.submission, "lora.py"))


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def read_text(path: Path, max_bytes: int, what: str) -> tuple[str | None, dict[str, str]]:
    """(text, {}) or (None, problem by language): path's UTF-8 text (a BOM allowed, CRLF made LF), never followed.

    what: "lora" or "notes", the file's role, which the messages name (each role has its own
    sentences: the languages do not place the file's name alike).
    """
    lora = what == "lora"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        error = exc.strerror
        return None, (said("lora.py cannot be read: {error}", error=error) if lora
                      else said("the notes file cannot be read: {error}", error=error))  # fmt: skip
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, (said("lora.py is not a regular file") if lora
                          else said("the notes file is not a regular file"))  # fmt: skip
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        kib = max_bytes // 1024
        return None, (said("lora.py is larger than {kib} KiB", kib=kib) if lora
                      else said("the notes file is larger than {kib} KiB", kib=kib))  # fmt: skip
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        byte = exc.start
        return None, (said("lora.py is not UTF-8 text (byte {byte}); save it as UTF-8", byte=byte) if lora
                      else said("the notes file is not UTF-8 text (byte {byte}); save it as UTF-8", byte=byte))  # fmt: skip
    return text.replace("\r\n", "\n"), {}
