"""The example submissions of tools/grading/examples, written out as one class to grade.

Most examples are the reference solution (or the student stubs) changed by a few exact edits, kept
in edits.toml and applied with labkit.core.edits, so that no copy of the reference sits in the tree
and falls behind it; the few others (a submission that is not a variant of either, a symbolic link)
are kept as they are. `materialize` writes both kinds into one directory: the class that `grade`
grades when given no submission, and that the tests and the benchmark grade.

    python -m labkit.grading.examples DIR      write the examples into DIR/examples, to read or grade
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from labkit.core.edits import EditError, apply_edits
from labkit.core.labinfo import Lab, load_lab
from labkit.core.overlay import REFERENCE, STUBS, WORKBOOK_ROOT
from labkit.core.tomlread import read_toml

EXAMPLES = WORKBOOK_ROOT / "tools" / "grading" / "examples"
EDITS_FILE = EXAMPLES / "edits.toml"
#: What an edited example may start from, besides an example listed before it.
BASES = ("reference", "stubs")
LAYOUTS = ("file", "workbook")
_FIELDS = {"name", "comment", "base", "layout", "notes", "append", "edit", "files"}


class ExampleError(Exception):
    """edits.toml is malformed, or an example clashes with another (an edit that no longer applies
    raises labkit.core.edits.EditError, naming its example)."""


@dataclass(frozen=True)
class EditedExample:
    """One example written as changes: base's text, edits applied in order, then append at the end.

    layout "file": a bare <name>.py; "workbook": <name>/ laid out like the workbook, with the notes
    file when notes is given and other files (path inside <name>/, text) beside them.
    """

    name: str
    comment: str
    base: str = "reference"
    layout: str = "file"
    edits: tuple[tuple[str, str], ...] = ()
    append: str = ""
    notes: str | None = None
    files: tuple[tuple[str, str], ...] = ()


def load_edited(path: Path = EDITS_FILE) -> list[EditedExample]:
    """The examples of edits.toml, checked for shape (whether their edits apply is `sources`' job)."""
    data = read_toml(path)
    shared: dict[str, Any] = data.get("notes", {})
    examples: list[EditedExample] = []
    for entry in data.get("example", []):
        name = entry.get("name", "?")
        where = f"{path.name}: example {name!r}"
        unknown = sorted(set(entry) - _FIELDS)
        if unknown:
            raise ExampleError(f"{where}: unknown fields {unknown}")
        if "name" not in entry or "comment" not in entry:
            raise ExampleError(f"{where}: needs a name and a comment")
        if name in {e.name for e in examples}:
            raise ExampleError(f"{where}: listed twice")
        base, layout = entry.get("base", "reference"), entry.get("layout", "file")
        if base not in BASES and base not in {e.name for e in examples}:
            raise ExampleError(f"{where}: base {base!r} is none of {BASES} nor an example listed before it")
        if layout not in LAYOUTS:
            raise ExampleError(f"{where}: layout {layout!r} is none of {LAYOUTS}")
        notes = entry.get("notes")
        if notes is not None and "\n" not in notes:  # one line: the name of a shared text
            if notes not in shared:
                raise ExampleError(f"{where}: notes {notes!r} is not a text of the [notes] table")
            notes = shared[notes]
        files = tuple(entry.get("files", {}).items())
        if (notes is not None or files) and layout != "workbook":
            raise ExampleError(f"{where}: notes and files need layout = \"workbook\"")
        for rel, _ in files:
            parts = PurePosixPath(rel).parts
            if PurePosixPath(rel).is_absolute() or ".." in parts or not parts:
                raise ExampleError(f"{where}: file {rel!r} must be a relative path inside the example")
        # A key written below an [[example.edit]] header belongs to that edit: say so, not ignore it.
        if any(set(e) != {"old", "new"} for e in entry.get("edit", [])):
            raise ExampleError(f"{where}: each edit has exactly old and new (example fields go above its edits)")
        edits = tuple((e["old"], e["new"]) for e in entry.get("edit", []))
        examples.append(EditedExample(name, entry["comment"], base, layout, edits, entry.get("append", ""), notes, files))
    return examples


def sources(examples: Sequence[EditedExample], reference: str, stubs: str) -> dict[str, str]:
    """Each edited example's lora.py: its base with its edits applied (EditError when one does not apply)."""
    built: dict[str, str] = {}
    for example in examples:
        start = reference if example.base == "reference" else stubs if example.base == "stubs" else built[example.base]
        text = apply_edits(f"{EDITS_FILE.name}, example {example.name!r}", example.edits, start)
        if example.append.strip():
            text = text.rstrip("\n") + "\n\n\n" + example.append.strip("\n") + "\n"
        built[example.name] = text
    return built


def stored_examples(folder: Path = EXAMPLES) -> list[Path]:
    """The examples kept as they are: the folder's entries that `grade` takes for submissions."""
    return [p for p in sorted(folder.iterdir())
            if (p.is_dir() or p.suffix == ".py" or p.is_symlink()) and not p.name.startswith((".", "_"))]  # fmt: skip


def _name(path: Path) -> str:
    """The submission's name, as labkit.grading.submission.find_submission gives it."""
    return path.stem if path.suffix == ".py" else path.name


def example_names(folder: Path = EXAMPLES, edits_file: Path = EDITS_FILE) -> list[str]:
    """Every example's name, as the grades name it."""
    return sorted([_name(p) for p in stored_examples(folder)] + [e.name for e in load_edited(edits_file)])


def materialize(
    dest: Path,
    *,
    folder: Path = EXAMPLES,
    edits_file: Path = EDITS_FILE,
    reference: Path = REFERENCE,
    stubs: Path = STUBS,
    lab: Lab | None = None,
) -> Path:
    """Write every example into dest/examples (which must not exist yet) and return that class directory."""
    lab = lab or load_lab()
    edited = load_edited(edits_file)
    stored = stored_examples(folder)
    clash = sorted({_name(p) for p in stored} & {e.name for e in edited})
    if clash:
        raise ExampleError(f"{edits_file.name}: examples also kept as files in {folder}: {', '.join(clash)}")
    texts = sources(edited, reference.read_text(encoding="utf-8"), stubs.read_text(encoding="utf-8"))
    classroom = Path(dest) / "examples"
    classroom.mkdir(parents=True)
    for path in stored:
        _copy(path, classroom / path.name)
    for example in edited:
        if example.layout == "file":
            (classroom / f"{example.name}.py").write_text(texts[example.name], encoding="utf-8")
            continue
        root = classroom / example.name
        extra = [(lab.submission, texts[example.name]), *example.files]
        if example.notes is not None:
            extra.append((lab.notes_path, example.notes))
        for rel, text in extra:
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    return classroom


def _copy(source: Path, target: Path) -> None:
    """source as it is; a symbolic link stays a link, to the same file wherever the copy lies."""
    if source.is_symlink():
        os.symlink(os.path.realpath(source), target)
    elif source.is_dir():
        target.mkdir()
        for child in sorted(source.iterdir()):
            _copy(child, target / child.name)
    else:
        shutil.copyfile(source, target)


@contextmanager
def materialized(**kwargs: Any) -> Iterator[Path]:
    """The examples written out in a temporary directory (removed afterwards): the class directory."""
    with tempfile.TemporaryDirectory(prefix="labkit-examples-") as tmp:
        yield materialize(Path(tmp), **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m labkit.grading.examples DIR   (writes DIR/examples)", file=sys.stderr)
        return 2
    try:
        classroom = materialize(Path(args[0]))
    except (ExampleError, EditError, FileExistsError) as exc:
        print(f"examples: {exc}", file=sys.stderr)
        return 1
    print(f"{len(list(classroom.iterdir()))} examples written to {classroom}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
