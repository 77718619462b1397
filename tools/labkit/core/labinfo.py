"""The lab's metadata, read from labs/lab.toml: blocks, points, invariants, markers, notebooks and hints.

The student's `check`, the instructor's `grade`, the GitHub Classroom workflow and the docs read it
from here, so that nothing repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from labkit.core.overlay import WORKBOOK_ROOT
from labkit.core.tomlread import read_toml
from minituner.i18n import LANGUAGES, language

LAB_FILE = WORKBOOK_ROOT / "labs" / "lab.toml"


@dataclass(frozen=True)
class Block:
    id: str  # "A"
    marker: str  # "block_a"
    points: float
    title: dict[str, str]
    notebook: str  # the English notebook; NAME.es.ipynb beside it is the Spanish twin
    hint: dict[str, str]

    def notebook_in(self, lang: str) -> str:
        """The block's notebook (relative to the workbook) in lang."""
        return self.notebook if lang == "en" else self.notebook.removesuffix(".ipynb") + f".{lang}.ipynb"


@dataclass(frozen=True)
class Extra:
    """A graded item that is not a block of tests: the type check, the notes file."""

    points: float
    title: dict[str, str]


@dataclass(frozen=True)
class Invariant:
    """One of the lab's three invariants: the graded test functions that state it gate their block."""

    id: str  # "identity"
    title: dict[str, str]
    why: dict[str, str]  # why it is non-negotiable, for the feedback
    tests: tuple[str, ...]  # test function names in the graded tests file


@dataclass(frozen=True)
class Rules:
    """The lab's code rule, checked statically by labkit.grading.rules (lab.toml's [rules] explains each list)."""

    imports: frozenset[str]  # the modules a submission may import
    builtins: frozenset[str]  # built-in functions it may not use
    dunders: frozenset[str]  # the only dunder names it may use
    attributes: frozenset[str]  # attribute names it may not use
    base_classes: frozenset[str]  # classes it may not derive from
    numpy_only_block: str  # the block whose functions use numpy only ("E")
    numpy_only_functions: tuple[str, ...]
    numpy_only_modules: frozenset[str]  # what those functions may not use ("torch")


@dataclass(frozen=True)
class Lab:
    id: str
    title: dict[str, str]
    submission: str
    graded_tests: str
    blocks: tuple[Block, ...]
    rule_points: float  # what each rule (graded test function) of a block is worth
    invariants: tuple[Invariant, ...]
    typecheck: Extra
    typecheck_command: tuple[str, ...]
    notes: Extra
    notes_path: str
    notes_keys: tuple[str, ...]
    rules: Rules

    @property
    def total_points(self) -> float:
        return sum(b.points for b in self.blocks) + self.typecheck.points + self.notes.points

    def invariant(self, invariant_id: str) -> Invariant:
        return next(i for i in self.invariants if i.id == invariant_id)

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
    invariants = tuple(
        Invariant(i["id"], i["title"], i["why"], tuple(i["tests"])) for i in data["invariants"]
    )
    for inv in invariants:
        missing = [f"{field} in {lang}" for field in ("title", "why") for lang in LANGUAGES
                   if not getattr(inv, field).get(lang)]  # fmt: skip
        if missing or not inv.tests:
            raise ValueError(f"{path}: invariant {inv.id} has no {', '.join(missing) or 'tests'}")
    tc, notes = data["typecheck"], data["notes"]
    return Lab(
        id=data["lab"]["id"],
        title=data["lab"]["title"],
        submission=data["lab"]["submission"],
        graded_tests=data["lab"]["graded_tests"],
        blocks=blocks,
        rule_points=float(data["points"]["rule_points"]),
        invariants=invariants,
        typecheck=Extra(float(tc["points"]), tc["title"]),
        typecheck_command=tuple(tc["command"]),
        notes=Extra(float(notes["points"]), notes["title"]),
        notes_path=notes["path"],
        notes_keys=tuple(notes["keys"]),
        rules=_load_rules(data["rules"], path, blocks),
    )


def _load_rules(data: dict[str, Any], path: Path, blocks: tuple[Block, ...]) -> Rules:
    numpy_only = data["numpy_only"]
    if numpy_only["block"] not in {b.id for b in blocks}:
        raise ValueError(f"{path}: [rules.numpy_only] names block {numpy_only['block']!r}, not a block")
    return Rules(
        imports=frozenset(data["imports"]),
        builtins=frozenset(data["builtins"]),
        dunders=frozenset(data["dunders"]),
        attributes=frozenset(data["attributes"]),
        base_classes=frozenset(data["base_classes"]),
        numpy_only_block=numpy_only["block"],
        numpy_only_functions=tuple(numpy_only["functions"]),
        numpy_only_modules=frozenset(numpy_only["modules"]),
    )


def user_language(flag: str | None = None) -> str:
    """The language to talk to the user in: the flag if given, else gettext's (minituner.i18n.language)."""
    if flag:
        if flag not in LANGUAGES:
            raise ValueError(f"--lang must be one of {', '.join(LANGUAGES)}, got {flag!r}")
        return flag
    return language()
