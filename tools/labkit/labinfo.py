"""The lab's metadata, read from labs/lab.toml: blocks, points, markers, notebooks and hints.

The student's `check`, the instructor's `grade`, the GitHub Classroom workflow and the docs read it
from here, so that nothing repeats it.
"""

from __future__ import annotations

import locale
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from labkit.overlay import WORKBOOK_ROOT
from labkit.tomlread import read_toml

LAB_FILE = WORKBOOK_ROOT / "labs" / "lab.toml"
LANGUAGES = ("en", "es")


@dataclass(frozen=True)
class Block:
    id: str  # "A"
    marker: str  # "block_a"
    points: float
    title: dict[str, str]
    notebook: str
    hint: dict[str, str]


@dataclass(frozen=True)
class Extra:
    """A graded item that is not a block of tests: the type check, the notes file."""

    points: float
    title: dict[str, str]


@dataclass(frozen=True)
class Lab:
    id: str
    title: dict[str, str]
    submission: str
    graded_tests: str
    blocks: tuple[Block, ...]
    typecheck: Extra
    typecheck_command: tuple[str, ...]
    notes: Extra
    notes_path: str
    notes_keys: tuple[str, ...]

    @property
    def total_points(self) -> float:
        return sum(b.points for b in self.blocks) + self.typecheck.points + self.notes.points

    def block(self, block_id: str) -> Block:
        for b in self.blocks:
            if b.id == block_id.upper() or b.marker == block_id:
                return b
        raise KeyError(f"no block {block_id!r}; the blocks are {', '.join(b.id for b in self.blocks)}")


@cache
def load_lab(path: Path = LAB_FILE) -> Lab:
    data = read_toml(path)
    blocks = tuple(
        Block(b["id"], b["marker"], float(b["points"]), b["title"], b["notebook"], b["hint"])
        for b in data["blocks"]
    )
    for b in blocks:
        for field in ("title", "hint"):
            missing = [lang for lang in LANGUAGES if not getattr(b, field).get(lang)]
            if missing:
                raise ValueError(f"{path}: block {b.id} has no {field} in {', '.join(missing)}")
    tc, notes = data["typecheck"], data["notes"]
    return Lab(
        id=data["lab"]["id"],
        title=data["lab"]["title"],
        submission=data["lab"]["submission"],
        graded_tests=data["lab"]["graded_tests"],
        blocks=blocks,
        typecheck=Extra(float(tc["points"]), tc["title"]),
        typecheck_command=tuple(tc["command"]),
        notes=Extra(float(notes["points"]), notes["title"]),
        notes_path=notes["path"],
        notes_keys=tuple(notes["keys"]),
    )


def user_language(flag: str | None = None) -> str:
    """The language to talk to the user in: the flag if given, else LANGUAGE / LC_ALL / LANG (es... -> es)."""
    if flag:
        if flag not in LANGUAGES:
            raise ValueError(f"--lang must be one of {', '.join(LANGUAGES)}, got {flag!r}")
        return flag
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "es" if value.lower().startswith("es") else "en"
    current = locale.getlocale()[0] or ""
    return "es" if current.lower().startswith("es") else "en"
