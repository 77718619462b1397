"""Finding a submission's files, and reading them without ever following them.

A submission is a bare lora.py, or a directory laid out like the workbook (or holding lora.py),
with an optional notes file. Its files are read as bytes, never executed here, never followed: a
symbolic link anywhere in the submission, a lora.py that is a directory, a file that is not UTF-8
text or is over the size cap, is a problem that the grade reports (with 0 points), and nothing
outside the submission is ever opened.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from labkit.labinfo import Lab

MAX_SOURCE_BYTES = 256 * 1024  # a lora.py; the reference is about 10 KiB
MAX_NOTES_BYTES = 64 * 1024
MAX_ENTRIES = 10_000  # files and folders looked at in one submission directory


@dataclass(frozen=True)
class Submission:
    name: str
    lora: Path | None  # None when the submission has no lora.py at all
    notes: Path | None
    problem: str = ""  # why it cannot be graded at all ("" when it can)


def find_submission(path: Path, lab: Lab) -> Submission:
    """The submission at path: its lora.py and notes file, or the problem that stops its grading."""
    path = Path(path)
    name = path.parent.name if path.name == "lora.py" else (path.stem if path.suffix == ".py" else path.name)
    if path.is_symlink():
        return Submission(name, None, None, f"{path.name} is a symbolic link: submissions are read, never followed")
    if path.is_file():
        beside = path.parent / Path(lab.notes_path).name
        return Submission(name, path, beside if _regular(beside) else None)
    link = _first_symlink(path)
    if link is not None:
        return Submission(name, None, None, f"{link} is a symbolic link: submissions are read, never followed")
    lora = next((p for p in (path / lab.submission, path / "lora.py") if os.path.lexists(p)), None)
    if lora is not None and not _regular(lora):
        kind = "a directory" if lora.is_dir() else "not a regular file"
        return Submission(name, None, None, f"{lora.relative_to(path)} is {kind}")
    notes = next((p for p in (path / lab.notes_path, path / Path(lab.notes_path).name) if _regular(p)), None)
    return Submission(name, lora, notes)


def holds_lora(directory: Path, lab: Lab) -> bool:
    """Whether directory is one submission (it has a lora.py, of whatever kind) rather than a class."""
    return any(os.path.lexists(directory / rel) for rel in (lab.submission, "lora.py"))


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _first_symlink(directory: Path) -> Path | None:
    """The first symbolic link inside directory (relative to it), or None."""
    seen = 0
    for root, dirs, files in os.walk(directory, followlinks=False):
        for entry in sorted(dirs + files):
            seen += 1
            full = Path(root) / entry
            if full.is_symlink():
                return full.relative_to(directory)
        if seen > MAX_ENTRIES:
            break
    return None


def read_text(path: Path, max_bytes: int, what: str) -> tuple[str | None, str]:
    """(text, "") or (None, problem): path's UTF-8 text (a BOM allowed, CRLF made LF), never followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return None, f"{what} cannot be read: {exc.strerror}"
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, f"{what} is not a regular file"
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        return None, f"{what} is larger than {max_bytes // 1024} KiB"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, f"{what} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
    return text.replace("\r\n", "\n"), ""
