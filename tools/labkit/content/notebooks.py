"""The lab's notebooks: one per block, built from a source, executed with the reference solution.

A source in tools/notebooks/ is a Python module defining NAME (the notebook's file stem), BLOCK
("A" to "E") and CELLS, a list of `md(en=..., es=...)` and `code(...)`. From it come two notebooks
in labs/, NAME.ipynb (English) and NAME.es.ipynb (Spanish): the same code cells with the same
outputs, the Markdown in one language each. The code is executed once, in a pristine copy of the
workbook with the reference solution overlaid, so the stored outputs are the reference's.

The first code cell that calls into lora.py is tagged FIRST_CALL_TAG: with the stubs, that cell
(and no earlier one) must fail with the NotImplementedError naming its block.

    python -m labkit.content.notebooks            rebuild and re-execute every notebook in labs/
    python -m labkit.content.notebooks --check    rebuild in memory; report notebooks that would change
"""

from __future__ import annotations

import argparse
import configparser
import io
import os
import re
import sys
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

from labkit.core.overlay import (
    REFERENCE,
    WORKBOOK_ROOT,
    OverlayRun,
    TestOutcome,
    import_file,
    overlaid_copy,
    python_path,
    run_overlay,
)
from minituner.i18n import LANGUAGES, tr

SOURCES = WORKBOOK_ROOT / "tools" / "notebooks"
LABS = WORKBOOK_ROOT / "labs"
SANITIZE = "labs/nbval-sanitize.cfg"
FIRST_CALL_TAG = "lab-first-call"
#: In a code cell, the notebook's language ("en" or "es" in each notebook): `say = translator("<lang>")`
#: gives the messages it prints in that language. The cells' comments are translated too (localized).
LANGUAGE_TOKEN = '"<lang>"'
#: nbval's arguments, as a student types them: pyproject's addopts block nbval's plugin (`-p no:nbval`,
#: so a plain pytest does not pay for its imports) and `-p nbval`, later on the line, unblocks it.
NBVAL_ARGS = ("-p", "nbval", "--nbval", "--nbval-current-env", "--nbval-sanitize-with", SANITIZE)
# Two notebooks at a time; loadfile keeps each notebook's cells on one worker (one kernel).
PARALLEL_ARGS = ("-n", "2", "--dist", "loadfile")
CELL_TIMEOUT = 300  # seconds; every notebook is meant to run in seconds


@dataclass(frozen=True)
class Markdown:
    en: str
    es: str


@dataclass(frozen=True)
class Code:
    source: str
    tags: tuple[str, ...] = field(default=())


def md(en: str, es: str) -> Markdown:
    """A Markdown cell, in English and in Spanish."""
    return Markdown(en.strip("\n"), es.strip("\n"))


def code(source: str, *tags: str) -> Code:
    """A code cell (the same in both languages), with optional cell tags."""
    return Code(source.strip("\n"), tuple(tags))


@dataclass(frozen=True)
class NotebookSource:
    name: str
    block: str
    cells: tuple[Markdown | Code, ...]

    def path(self, lang: str, root: Path = LABS) -> Path:
        return root / (f"{self.name}.ipynb" if lang == "en" else f"{self.name}.{lang}.ipynb")


def load_sources(directory: Path = SOURCES) -> list[NotebookSource]:
    sources = []
    for path in sorted(directory.glob("block_*.py")):
        module = import_file(path, f"labkit_nbsource_{path.stem}")
        cells = tuple(module.CELLS)
        if sum(FIRST_CALL_TAG in c.tags for c in cells if isinstance(c, Code)) != 1:
            raise ValueError(f"{path.name}: exactly one code cell must be tagged {FIRST_CALL_TAG}")
        sources.append(NotebookSource(module.NAME, module.BLOCK, cells))
    return sources


def code_comments(source: str) -> list[tuple[int, int, str]]:
    """The comments of a code cell that a reader reads: (line, column, text without "# ").

    Tool directives (noqa, type:, fmt:) are left out: they are for the tools, and stay as they are.
    """
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        text = token.string[1:].strip()
        if token.type == tokenize.COMMENT and text and not text.startswith(("noqa", "type:", "fmt:")):
            found.append((token.start[0], token.start[1], text))
    return found


def localized(source: str, lang: str) -> str:
    """A code cell's source as the lang notebook holds it: LANGUAGE_TOKEN filled in, its comments in lang."""
    source = source.replace(LANGUAGE_TOKEN, f'"{lang}"')
    if lang == "en":
        return source
    lines = source.split("\n")
    for row, column, text in code_comments(source):
        line = lines[row - 1]
        lines[row - 1] = line[:column] + "# " + tr(lang, text)  # a comment runs to the end of its line
    return "\n".join(lines)


def _new_notebook(source: NotebookSource, lang: str) -> nbformat.NotebookNode:
    cells = []
    for cell in source.cells:
        if isinstance(cell, Markdown):
            cells.append(nbformat.v4.new_markdown_cell(cell.en if lang == "en" else cell.es))
        else:
            new = nbformat.v4.new_code_cell(localized(cell.source, lang))
            if cell.tags:
                new.metadata["tags"] = list(cell.tags)
            cells.append(new)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["minituner"] = {"block": source.block, "language": lang}
    notebook: nbformat.NotebookNode = nb
    return notebook


def _merge_streams(outputs: list[Any]) -> list[Any]:
    """Join consecutive pieces of the same stream: how stdout is chunked varies from run to run."""
    merged: list[Any] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.output_type == "stream" and previous is not None
                and previous.output_type == "stream" and previous.name == output.name):  # fmt: skip
            previous.text += output.text
        else:
            merged.append(output)
    return merged


def _normalize(nb: nbformat.NotebookNode) -> None:
    """Drop what changes from run to run without meaning anything: timings, counters, ids."""
    count = 0
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
            cell.outputs = _merge_streams(cell.outputs)
            for output in cell.outputs:
                if "execution_count" in output:
                    output["execution_count"] = count
    nb.metadata["language_info"] = {"name": "python"}


def execute(source: NotebookSource, workdir: Path) -> dict[str, nbformat.NotebookNode]:
    """Both language versions of a notebook, each with the outputs of its own run in workdir (they print
    in their own language)."""
    notebooks = {lang: _new_notebook(source, lang) for lang in LANGUAGES}
    env_before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = python_path(workdir)  # the kernel inherits it
    try:
        for nb in notebooks.values():
            NotebookClient(
                nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                resources={"metadata": {"path": str(workdir / "labs")}},
            ).execute()  # fmt: skip
            _normalize(nb)
    finally:
        if env_before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = env_before
    return notebooks


def sanitizers() -> list[tuple[re.Pattern[str], str]]:
    """nbval's sanitizers (labs/nbval-sanitize.cfg): output that may differ between machines."""
    config = configparser.ConfigParser()
    config.read(WORKBOOK_ROOT / SANITIZE, encoding="utf-8")
    return [(re.compile(config[name]["regex"]), config[name]["replace"]) for name in config.sections()]


def _sanitized(text: Any, rules: Sequence[tuple[re.Pattern[str], str]]) -> Any:
    if not isinstance(text, str):
        return text
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def comparable(nb: nbformat.NotebookNode) -> list[Any]:
    """What must not change between two builds: sources and outputs, images left out, sanitized
    as nbval sanitizes them (float rounding noise depends on the CPU's kernels)."""
    rules = sanitizers()
    cells = []
    for cell in nb.cells:
        outputs = []
        for output in cell.get("outputs", []):
            data = {k: _sanitized(v, rules) for k, v in output.get("data", {}).items() if not k.startswith("image/")}
            outputs.append((output.get("output_type"), _sanitized(output.get("text"), rules), data,
                            output.get("ename"), output.get("evalue")))  # fmt: skip
        cells.append((cell.cell_type, cell.source, cell.metadata.get("tags"), outputs))
    return cells


def build(sources: Sequence[NotebookSource], check: bool = False) -> list[str]:
    """Build every notebook; write them (check=False) or list those that differ (check=True)."""
    stale = []
    with overlaid_copy(REFERENCE) as workdir:
        for source in sources:
            for lang, nb in execute(source, workdir).items():
                path = source.path(lang)
                if check:
                    if not path.exists():
                        stale.append(f"{path.name}: missing")
                    elif comparable(nbformat.read(path, as_version=4)) != comparable(nb):
                        stale.append(f"{path.name}: differs from a fresh build")
                else:
                    nbformat.write(nb, path)
    return stale


# ----------------------------------------------------------------------------- nbval
def run_nbval(candidate: Path, paths: Sequence[str] = ("labs",)) -> OverlayRun:
    """nbval on the notebooks, with candidate overlaid as lora.py (the grading mechanism)."""
    return run_overlay(candidate, tests=paths, pytest_args=(*NBVAL_ARGS, *PARALLEL_ARGS))


def _by_notebook(run: OverlayRun) -> dict[str, list[TestOutcome]]:
    groups: dict[str, list[TestOutcome]] = {}
    for outcome in run.outcomes:
        groups.setdefault(outcome.nodeid.split("::")[0], []).append(outcome)
    return groups


def _cell_number(nodeid: str) -> int:
    match = re.search(r"Cell (\d+)$", nodeid)
    return int(match.group(1)) if match else -1


def first_call_cell(path: Path) -> int:
    """The code-cell number (as nbval counts) of the cell tagged FIRST_CALL_TAG."""
    nb = nbformat.read(path, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    return next(i for i, c in enumerate(code_cells) if FIRST_CALL_TAG in c.metadata.get("tags", []))


def nbval_reference_problems(run: OverlayRun, expected: int) -> list[str]:
    """With the reference every cell of every notebook passes."""
    problems = []
    notebooks = _by_notebook(run)
    if len(notebooks) != expected:
        problems.append(f"{len(notebooks)} notebooks ran, expected {expected}:\n{run.output[-3000:]}")
    problems += [f"{o.nodeid}: {o.outcome}: {o.message[:1500]}" for o in run.not_passed]
    return problems


def nbval_stub_problems(run: OverlayRun, root: Path, expected: int) -> list[str]:
    """With the stubs each notebook fails first at its tagged cell, with a block's NotImplementedError."""
    problems = []
    notebooks = _by_notebook(run)
    if len(notebooks) != expected:
        problems.append(f"{len(notebooks)} notebooks ran, expected {expected}")
    for nb_path, outcomes in notebooks.items():
        outcomes = sorted(outcomes, key=lambda o: _cell_number(o.nodeid))
        first_failure = next((o for o in outcomes if o.outcome != "passed"), None)
        want = first_call_cell(root / nb_path)
        if first_failure is None:
            problems.append(f"{nb_path}: every cell passed with the stubs")
        elif _cell_number(first_failure.nodeid) != want:
            problems.append(f"{nb_path}: first failure at {first_failure.nodeid}, expected Cell {want}:"
                            f" {first_failure.message[:800]}")  # fmt: skip
        elif not re.search(r"NotImplementedError.*Block [A-E]:", first_failure.message, re.S):
            problems.append(f"{nb_path}: Cell {want} failed without the stub's NotImplementedError:"
                            f" {first_failure.message[:800]}")  # fmt: skip
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.content.notebooks", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="report notebooks a rebuild would change")
    parser.add_argument("-k", default="", help="only sources whose name contains this text")
    args = parser.parse_args(argv)
    sources = [s for s in load_sources() if args.k in s.name]
    stale = build(sources, check=args.check)
    for line in stale:
        print(f"STALE {line}")
    if not args.check:
        print(f"wrote {len(LANGUAGES) * len(sources)} notebooks to labs/")
    return 1 if stale else 0


if __name__ == "__main__":
    # Run the imported module's main, not __main__'s: the sources import labkit.content.notebooks, and
    # their md()/code() cells must be instances of that module's classes.
    from labkit.content.notebooks import main as _main

    sys.exit(_main())
