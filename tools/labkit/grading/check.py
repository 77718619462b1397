"""`check`: where you stand in Lab 00, block by block, graded exactly as the instructor's `grade` does.

    check                 # progress as it goes, then the table, the first failure, type check and notes
    check --hint B        # the hint of block B
    check --notebooks     # also run every block's notebook on your code (--notebooks B: block B's only)
    check --watch         # run again whenever src/minituner/lora.py or the notes file changes
    check --lang es       # in Spanish (also: LANG=es_ES.UTF-8 check)

Your lora.py is overlaid on a pristine copy of the workbook, as in grading, but with the public seed
(0) that the notebooks and a plain `pytest` use. mypy runs at the same time as the graded tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from labkit.core.labinfo import Block, Lab, load_lab, user_language
from labkit.core.overlay import WORKBOOK_ROOT, TestOutcome, last_lines, run_overlay
from labkit.core.report import ANSI_ESCAPE
from labkit.grading.feedback import violation_line
from labkit.grading.grader import (
    DEFAULT_LIMITS,
    STATUS_LABELS,
    BlockGrade,
    Grade,
    ItemGrade,
    failure_message,
    grade_submission,
)
from labkit.grading.points import broken_message
from labkit.grading.submission import Submission

PUBLIC_SEED = 0
WIDTH = 88  # columns of wrapped text (hints, the code rule)
NOTEBOOK_TIMEOUT = 600.0  # seconds for all the notebooks

_COLS = {"en": ("block", "rules", "points", "status"), "es": ("bloque", "reglas", "puntos", "estado")}
_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "head": "{title}: {points:g} / {max:g} points",
        "typecheck": "mypy --strict",
        "notes": "notes file",
        "start": "Grading your lora.py: the graded tests, and mypy --strict at the same time...",
        "first": "First failure, block {block}: {test}",
        "next": "Next: block {block}. For a hint: check --hint {block}",
        "all": "All blocks done.",
        "hint": "Hint for block {block} ({title}):",
        "problem": "Nothing could be graded:",
        "watch": "Watching {lora} and {notes} (Ctrl-C to stop)...",
        "notebook": "Its notebook: {notebook} (check --notebooks {block} runs it on your code)",
        "nb_start": "Running the notebooks on your code ({count}; about half a minute each)...",
        "nb_ok": "{notebook}: ok ({cells} cells)",
        "nb_failed": "{notebook}: cell {cell} failed: {error}",
        "nb_differs": "{notebook}: cell {cell} ran, but its output differs from the stored one:",
        "nb_none": "{notebook}: did not run",
        "nb_cells": "(cells are numbered as In [n] in the stored notebook: code cells, from 1)",
        "rule": "Your lora.py breaks the lab's code rule (only torch, torch.nn, torch.nn.functional, numpy and "
        "a few standard modules; nothing that reaches outside the lab's code). The instructor's grader "
        "withholds such a submission for review. Fix these lines first:",
    },
    "es": {
        "head": "{title}: {points:g} / {max:g} puntos",
        "typecheck": "mypy --strict",
        "notes": "archivo de notas",
        "start": "Calificando tu lora.py: los tests evaluables, y mypy --strict a la vez...",
        "first": "Primer fallo, bloque {block}: {test}",
        "next": "Siguiente: bloque {block}. Para una pista: check --hint {block}",
        "all": "Todos los bloques están terminados.",
        "hint": "Pista para el bloque {block} ({title}):",
        "problem": "No se pudo calificar nada:",
        "watch": "Vigilando {lora} y {notes} (Ctrl-C para parar)...",
        "notebook": "Notebook del bloque: {notebook} (check --notebooks {block} lo ejecuta con tu código)",
        "nb_start": "Ejecutando los notebooks con tu código ({count}; cerca de medio minuto cada uno)...",
        "nb_ok": "{notebook}: bien ({cells} celdas)",
        "nb_failed": "{notebook}: falló la celda {cell}: {error}",
        "nb_differs": "{notebook}: la celda {cell} se ejecutó, pero su salida difiere de la guardada:",
        "nb_none": "{notebook}: no se ejecutó",
        "nb_cells": "(las celdas se numeran como In [n] en el notebook guardado: celdas de código, desde 1)",
        "rule": "Tu lora.py incumple la regla de código del laboratorio (solo torch, torch.nn, torch.nn.functional, numpy "
        "y unos pocos módulos estándar; nada que salga del código del laboratorio). El corrector del docente "
        "retiene una entrega así para revisarla. Corrige primero estas líneas:",
    },
}


def wrap(text: str, indent: str = "") -> str:
    """text wrapped at WIDTH columns, paragraph by paragraph (its own line breaks kept)."""
    return "\n".join(
        textwrap.fill(line, WIDTH, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)
        if line.strip() else ""
        for line in text.splitlines()
    )  # fmt: skip


def render(grade: Grade, lab: Lab, lang: str) -> str:
    t = _TEXT[lang]
    lines = [t["head"].format(title=lab.title[lang], points=grade.points, max=grade.max_points), ""]
    if grade.violations:
        lines += [wrap(t["rule"]), *(f"    {violation_line(v, lang)}" for v in grade.violations), ""]
    if grade.problem:
        return "\n".join([*lines, t["problem"], grade.problem[lang]])
    cols = _COLS[lang]
    lines.append(f"  {cols[0]:44} {cols[1]:>7}  {cols[2]:>7}  {cols[3]}")
    for b in grade.blocks:
        title = f"{b.id}  {lab.block(b.id).title[lang]}"
        lines.append(f"{_mark(b)} {title:44} {_fraction(b.rules_passed, b.rules)}  "
                     f"{_fraction(b.points, b.max_points)}  {STATUS_LABELS[lang][b.status]}")  # fmt: skip
    for key, item in (("typecheck", grade.typecheck), ("notes", grade.notes)):
        lines.append(f"{'✓' if item.ok else '✗'} {t[key]:44} {'':7}  {_fraction(item.points, item.max_points)}")
    pending = [b for b in grade.blocks if b.status != "done"]
    lines.append("")
    if not pending:
        lines.append(t["all"])
    else:
        block = next((b for b in pending if b.status != "not started"), pending[0])
        failure = block.failures[0]
        message = failure_message(failure.message, failure.exc_type).strip()[:1500]
        lines += [t["first"].format(block=block.id, test=failure.name), ""]
        lines += [wrap(broken_message(lab.invariant(i), block.id, lang), "    ") + "\n" for i in block.broken]
        lines += [_indent(message), ""]
        lines.append(t["notebook"].format(notebook=lab.block(block.id).notebook_in(lang), block=block.id))
        lines.append(t["next"].format(block=block.id))
    for item in (grade.typecheck, grade.notes):
        if not item.ok and item.text(lang):
            lines += ["", _indent(item.text(lang).strip()[:1500])]
    return "\n".join(lines)


def _fraction(points: float, max_points: float) -> str:
    """ "27/27", aligned in a 7-column cell."""
    return f"{points:>3g}/{max_points:<3g}"


def _mark(block: BlockGrade) -> str:
    return {"done": "✓", "not started": "·"}.get(block.status, "✗")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def progress_line(key: str, result: BlockGrade | ItemGrade, lab: Lab, lang: str) -> str:
    """One short line per block as its tests end, then the type check's and the notes file's."""
    if isinstance(result, BlockGrade):
        title = f"{result.id}  {lab.block(result.id).title[lang]}"
        status = "" if result.status == "done" else f"  {STATUS_LABELS[lang][result.status]}"
        return f"  {title:44} {_fraction(result.points, result.max_points)} {_mark(result)}{status}"
    label = _TEXT[lang][key]
    return f"  {label:44} {_fraction(result.points, result.max_points)} {'✓' if result.ok else '✗'}"


def run_once(lab: Lab, lang: str, notebooks: Sequence[Block] = ()) -> Grade:
    lora = WORKBOOK_ROOT / lab.submission
    notes = WORKBOOK_ROOT / lab.notes_path
    submission = Submission("yours", lora, notes if notes.is_file() else None)
    print(_TEXT[lang]["start"], flush=True)

    def progress(key: str, result: BlockGrade | ItemGrade) -> None:
        print(progress_line(key, result, lab, lang), flush=True)

    # Your own code on your own machine: no sandbox needed (the instructor's grade uses one).
    grade = grade_submission(submission, seed=PUBLIC_SEED, limits=DEFAULT_LIMITS,
                             mypy_cache=WORKBOOK_ROOT / ".mypy_cache", sandbox=False,
                             progress=progress)  # fmt: skip
    print("\n" + render(grade, lab, lang), flush=True)
    if notebooks:
        print()
        run_notebooks(lora, [b.notebook_in(lang) for b in notebooks], lang)
    return grade


# ----------------------------------------------------------------------------- notebooks
def run_notebooks(lora: Path, paths: Sequence[str], lang: str) -> dict[str, str]:
    """nbval on the notebooks (paths relative to the workbook) with lora overlaid; print a line per
    notebook as it ends: ok, or its first failing cell and that cell's error. Returns the lines."""
    from labkit.content.notebooks import (  # nbformat and nbclient: only here
        NBVAL_ARGS,
        PARALLEL_ARGS,
    )

    t = _TEXT[lang]
    print(t["nb_start"].format(count=len(paths)), flush=True)
    cells = {path: _code_cells(WORKBOOK_ROOT / path) for path in paths}
    lines: dict[str, str] = {}

    def show(outcomes: Sequence[TestOutcome], final: bool = False) -> None:
        for path in paths:
            mine = [o for o in outcomes if o.nodeid.split("::")[0] == path]
            done = len([o for o in mine if o.outcome != "not run"]) >= cells[path]
            if path not in lines and (done or final):
                lines[path] = notebook_report(path, mine, lang)
                print(lines[path], flush=True)

    # Two kernels at a time where pytest-xdist is installed (the maintainers' install); a student's
    # install has no xdist, and one notebook needs no workers anyway.
    parallel = PARALLEL_ARGS if len(paths) > 1 and importlib.util.find_spec("xdist") else ()
    run = run_overlay(lora, tests=paths, pytest_args=(*NBVAL_ARGS, *parallel),
                      timeout=NOTEBOOK_TIMEOUT, progress=show)  # fmt: skip
    show(run.outcomes, final=True)
    print(t["nb_cells"], flush=True)
    if not run.outcomes:
        print(_indent(last_lines(_clean(run.output), 8)), flush=True)
    return lines


def _code_cells(path: Path) -> int:
    import nbformat

    try:
        notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
        return sum(c.cell_type == "code" for c in notebook.cells)
    except (OSError, ValueError):
        return 0


def notebook_report(path: str, outcomes: Sequence[TestOutcome], lang: str) -> str:
    """One notebook's line: ok, or its first failing cell and the error in a few lines."""
    t = _TEXT[lang]
    name = Path(path).name
    if not outcomes:
        return t["nb_none"].format(notebook=name)
    ordered = sorted(outcomes, key=lambda o: _cell_index(o.nodeid))
    failed = next((o for o in ordered if o.outcome not in ("passed", "skipped")), None)
    if failed is None:
        return t["nb_ok"].format(notebook=name, cells=len(ordered))
    cell = _cell_index(failed.nodeid) + 1
    message = _clean(failed.message)
    if message.startswith("Cell outputs differ"):
        diff = last_lines(message.partition("\n")[2], 6)
        return t["nb_differs"].format(notebook=name, cell=cell) + "\n" + _indent(diff)
    return t["nb_failed"].format(notebook=name, cell=cell, error=cell_error(message))


def _cell_index(nodeid: str) -> int:
    match = re.search(r"Cell (\d+)$", nodeid)
    return int(match.group(1)) if match else 10**6


def _clean(text: str) -> str:
    return ANSI_ESCAPE.sub("", text)


def cell_error(message: str, max_lines: int = 4) -> str:
    """The exception a notebook cell raised, "Type: message", from nbval's text and the cell's traceback."""
    lines = _clean(message).strip().splitlines()
    header = next((m for line in lines if (m := re.match(r"^(\S+)\s+Traceback \(most recent call last\)", line))), None)
    if header is not None:
        name = header.group(1)
        last = max((i for i, line in enumerate(lines) if line == name or line.startswith(name + ":")), default=None)
        if last is not None:
            return "\n".join(line[:300] for line in lines[last:last + max_lines]).strip()
    found = [i for i, line in enumerate(lines) if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", line)]
    if found:
        return "\n".join(line[:300] for line in lines[found[-1]:found[-1] + max_lines]).strip()
    return last_lines("\n".join(lines), 2)


# ----------------------------------------------------------------------------- the command
def _stamp(paths: Sequence[Path]) -> tuple[float, ...]:
    return tuple(p.stat().st_mtime if p.exists() else 0.0 for p in paths)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hint", metavar="BLOCK", help="show the hint of BLOCK (A to E)")
    parser.add_argument("--notebooks", metavar="BLOCK", nargs="*",
                        help="also run the blocks' notebooks on your code (all, or the blocks named)")  # fmt: skip
    parser.add_argument("--watch", action="store_true", help="run again whenever lora.py or the notes file change")
    parser.add_argument("--lang", choices=["en", "es"], help="language (default: from LANG)")
    args = parser.parse_args(argv)
    lab, lang = load_lab(), user_language(args.lang)
    if args.hint:
        try:
            block = lab.block(args.hint)
        except KeyError as exc:
            parser.error(f"--hint: {exc.args[0]}")
        print(_TEXT[lang]["hint"].format(block=block.id, title=block.title[lang]))
        print(wrap(block.hint[lang]))
        return 0
    try:
        notebooks = [] if args.notebooks is None else [lab.block(b) for b in args.notebooks] or list(lab.blocks)
    except KeyError as exc:
        parser.error(f"--notebooks: {exc.args[0]}")
    grade = run_once(lab, lang, notebooks)
    if not args.watch:
        complete = grade.points == grade.max_points and not grade.withheld
        return 0 if complete else 1
    watched = [WORKBOOK_ROOT / lab.submission, WORKBOOK_ROOT / lab.notes_path]
    watching = "\n" + _TEXT[lang]["watch"].format(lora=lab.submission, notes=lab.notes_path)
    print(watching, flush=True)
    stamp = _stamp(watched)
    try:
        while True:
            time.sleep(1.0)
            if _stamp(watched) != stamp:
                stamp = _stamp(watched)
                print("\n" + "-" * 60)
                run_once(lab, lang, notebooks)
                print(watching, flush=True)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
