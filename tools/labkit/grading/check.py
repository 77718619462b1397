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

import importlib.util
import re
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from labkit.core import cli
from labkit.core.labinfo import Block, Lab, load_lab
from labkit.core.overlay import WORKBOOK_ROOT, TestOutcome, last_lines, run_overlay
from labkit.core.report import ANSI_ESCAPE
from labkit.grading.feedback import violation_line
from labkit.grading.grader import (
    DEFAULT_LIMITS,
    BlockGrade,
    Grade,
    ItemGrade,
    failure_message,
    grade_submission,
    status_label,
)
from labkit.grading.points import broken_message
from labkit.grading.submission import Submission
from minituner.i18n import error_text, tr

PUBLIC_SEED = 0
WIDTH = 88  # columns of wrapped text (hints, the code rule)
NOTEBOOK_TIMEOUT = 600.0  # seconds for all the notebooks

def wrap(text: str, indent: str = "") -> str:
    """text wrapped at WIDTH columns, paragraph by paragraph (its own line breaks kept)."""
    return "\n".join(
        textwrap.fill(line, WIDTH, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)
        if line.strip() else ""
        for line in text.splitlines()
    )  # fmt: skip


def render(grade: Grade, lab: Lab, lang: str) -> str:
    """The grade as check shows it at the end: the table of blocks, then the one failure to fix first."""
    lines = [tr(lang, "{title} — {points} / {max} points").format(
        title=lab.title[lang], points=number(grade.points, lang), max=number(grade.max_points, lang)), ""]  # fmt: skip
    if grade.violations:
        rule = tr(lang, "Your lora.py breaks the lab's code rule (only torch, torch.nn, torch.nn.functional, numpy and "
                  "a few standard modules; nothing that reaches outside the lab's code). The instructor's grader "
                  "withholds such a submission for review. Fix these lines first:")  # fmt: skip
        lines += [wrap(rule), *(f"    {violation_line(v, lang)}" for v in grade.violations), ""]
    if grade.problem:
        return "\n".join([*lines, tr(lang, "Nothing could be graded:"), grade.problem[lang]])
    # i18n: the table's column heads; the first is padded to 44 characters, the others to 7
    cols = (tr(lang, "block"), tr(lang, "rules"), tr(lang, "points"), tr(lang, "status"))
    lines.append(f"  {cols[0]:44} {cols[1]:>7}  {cols[2]:>7}  {cols[3]}")
    for b in grade.blocks:
        title = f"{b.id}  {lab.block(b.id).title[lang]}"
        lines.append(f"{_mark(b)} {title:44} {_fraction(b.rules_passed, b.rules, lang)}  "
                     f"{_fraction(b.points, b.max_points, lang)}  {status_label(b.status, lang)}")  # fmt: skip
    for label, item in (("mypy --strict", grade.typecheck), (tr(lang, "notes file"), grade.notes)):
        lines.append(f"{'✓' if item.ok else '✗'} {label:44} {'':7}  {_fraction(item.points, item.max_points, lang)}")
    pending = [b for b in grade.blocks if b.status != "done"]
    lines.append("")
    if not pending:
        lines.append(tr(lang, "All blocks done."))
    else:
        block = next((b for b in pending if b.status != "not started"), pending[0])
        failure = block.failures[0]
        message = failure_message(failure.message, failure.exc_type).strip()[:1500]
        lines += [tr(lang, "First failure, block {block}: {test}").format(block=block.id, test=failure.name), ""]
        lines += [wrap(broken_message(lab.invariant(i), block.id, lang), "    ") + "\n" for i in block.broken]
        lines += [_indent(message), ""]
        lines.append(tr(lang, "Its notebook: {notebook} (check --notebooks {block} runs it on your code)").format(
            notebook=lab.block(block.id).notebook_in(lang), block=block.id))  # fmt: skip
        lines.append(tr(lang, "Next: block {block}. For a hint: check --hint {block}").format(block=block.id))
    for item in (grade.typecheck, grade.notes):
        if not item.ok and item.text(lang):
            lines += ["", _indent(item.text(lang).strip()[:1500])]
    return "\n".join(lines)


def _fraction(points: float, max_points: float, lang: str) -> str:
    """ "27/27", aligned in a 7-column cell (3.75 is 3,75 in Spanish)."""
    return f"{number(points, lang):>3}/{number(max_points, lang):<3}"


def number(value: float, lang: str) -> str:
    """value as a short number in lang's way: 32.75 in English, 32,75 in Spanish."""
    text = f"{value:g}"
    return text.replace(".", ",") if lang == "es" else text


def _mark(block: BlockGrade) -> str:
    return {"done": "✓", "not started": "·"}.get(block.status, "✗")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def progress_line(key: str, result: BlockGrade | ItemGrade, lab: Lab, lang: str) -> str:
    """One short line per block as its tests end, then the type check's and the notes file's.

    A line says what it counts ("12 / 27 points"): the table at the end, with its header, is the summary.
    """
    if isinstance(result, BlockGrade):
        label = tr(lang, "block {block}").format(block=result.id)
        status = status_label(result.status, lang)
    else:  # its points say it all; why it has none is said below the table
        label = "mypy --strict" if key == "typecheck" else tr(lang, "notes file")
        status = "✓" if result.ok else "✗"
    points = tr(lang, "{points} / {max} points").format(points=number(result.points, lang),
                                                         max=number(result.max_points, lang))  # fmt: skip
    return f"  {label:16} {points:18} {status}"


def run_once(lab: Lab, lang: str, notebooks: Sequence[Block] = ()) -> Grade:
    lora = WORKBOOK_ROOT / lab.submission
    notes = WORKBOOK_ROOT / lab.notes_path
    submission = Submission("yours", lora, notes if notes.is_file() else None)
    print(tr(lang, "Grading your lora.py: the graded tests, and mypy --strict at the same time..."), flush=True)

    def progress(key: str, result: BlockGrade | ItemGrade) -> None:
        print(progress_line(key, result, lab, lang), flush=True)

    # Your own code on your own machine: no sandbox needed (the instructor's grade uses one).
    grade = grade_submission(submission, seed=PUBLIC_SEED, limits=DEFAULT_LIMITS,
                             mypy_cache=WORKBOOK_ROOT / ".mypy_cache", sandbox=False,
                             progress=progress, language=lang)  # fmt: skip
    print("\n" + render(grade, lab, lang), flush=True)
    if notebooks:
        print()
        run_notebooks(lora, [b.notebook_in(lang) for b in notebooks], lang)
    return grade


# ----------------------------------------------------------------------------- notebooks
def run_notebooks(lora: Path, paths: Sequence[str], lang: str) -> dict[str, str]:
    """nbval on the notebooks (paths relative to the workbook) with lora overlaid; print each notebook's
    report as it ends (notebook_report). Returns the reports, by path."""
    from labkit.content.notebooks import (  # nbformat and nbclient: only here
        NBVAL_ARGS,
        PARALLEL_ARGS,
    )

    print(tr(lang, "Running {count} notebook(s) on your code, a few seconds each...").format(count=len(paths)),
          flush=True)  # fmt: skip
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
    if any(" ok " not in line for line in lines.values()) or len(lines) < len(paths):
        print(tr(lang, "(cells are numbered as In [n] in the stored notebook: code cells, from 1)"), flush=True)
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
    """One notebook's report: ok; or its first failing cell and the error in a few lines; or the first
    cell whose output differs from the stored one, each differing line labelled as yours or stored."""
    name = Path(path).name
    if not outcomes:
        return tr(lang, "{notebook}: did not run").format(notebook=name)
    ordered = sorted(outcomes, key=lambda o: _cell_index(o.nodeid))
    failed = next((o for o in ordered if o.outcome not in ("passed", "skipped")), None)
    if failed is None:
        return tr(lang, "{notebook}: ok ({cells} cells)").format(notebook=name, cells=len(ordered))
    cell = _cell_index(failed.nodeid) + 1
    message = _clean(failed.message)
    if "Cell outputs differ" in "\n".join(message.splitlines()[:2]):  # nbval: the first line, or after its heading
        head = tr(lang, "{notebook}: cell {cell} ran, but its output differs from the stored one:")
        return head.format(notebook=name, cell=cell) + "\n" + _indent("\n".join(output_diff(message, lang)))
    error = error_text(cell_error(message), lang)
    return tr(lang, "{notebook}: cell {cell} failed: {error}").format(notebook=name, cell=cell, error=error)


def output_diff(message: str, lang: str, max_lines: int = 8) -> list[str]:
    """The lines nbval's message says differ, as "yours:  ..." and "stored: ..." (at most max_lines).

    nbval compares `reference_output == test_output`, and pytest writes that diff with "+" for the
    stored output (the left side) and "-" for this run's; its "?" marker lines and its notes
    ("Skipping ... use -v") are left out.
    """
    yours, stored = tr(lang, "yours: "), tr(lang, "stored:")
    found = []
    for line in message.splitlines():
        if line.startswith("  - "):
            found.append(f"{yours} {line[4:]}")
        elif line.startswith("  + "):
            found.append(f"{stored} {line[4:]}")
    if not found:  # another kind of difference (an image, a missing output): nbval's own words
        return last_lines(message.partition("\n")[2], 6).splitlines()
    return found[:max_lines] + (["..."] if len(found) > max_lines else [])


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


def unknown_block(name: str, lab: Lab, lang: str) -> str:
    """Why name names no block of the lab, in lang."""
    return tr(lang, "no block {name}; the blocks are {blocks}").format(
        name=repr(name), blocks=", ".join(b.id for b in lab.blocks))  # fmt: skip


# ----------------------------------------------------------------------------- the command
def _stamp(paths: Sequence[Path]) -> tuple[float, ...]:
    return tuple(p.stat().st_mtime if p.exists() else 0.0 for p in paths)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    lang = cli.language_of(argv)
    description = tr(lang, "Where you stand in Lab 00, block by block, graded exactly as the instructor's `grade` does.")
    parser = cli.parser("check", description, lang)
    block_value = tr(lang, "BLOCK")  # i18n: the name of the option's value in --help (a block's letter)
    parser.add_argument("--hint", metavar=block_value, help=tr(lang, "show the hint of BLOCK (A to E)"))
    parser.add_argument("--notebooks", metavar=block_value, nargs="*",
                        help=tr(lang, "also run the blocks' notebooks on your code (all, or the blocks named)"))  # fmt: skip
    parser.add_argument("--watch", action="store_true",
                        help=tr(lang, "run again whenever lora.py or the notes file change"))  # fmt: skip
    args = parser.parse_args(argv)
    lab = load_lab()

    def block_named(name: str, option: str) -> Block:
        try:
            return lab.block(name)
        except KeyError:
            parser.error(f"{option}: " + unknown_block(name, lab, lang))

    if args.hint:
        block = block_named(args.hint, "--hint")
        print(tr(lang, "Hint for block {block} ({title}):").format(block=block.id, title=block.title[lang]))
        print(wrap(block.hint[lang]))
        return 0
    notebooks = [] if args.notebooks is None else [block_named(b, "--notebooks") for b in args.notebooks] or list(lab.blocks)
    grade = run_once(lab, lang, notebooks)
    if not args.watch:
        complete = grade.points == grade.max_points and not grade.withheld
        return 0 if complete else 1
    watched = [WORKBOOK_ROOT / lab.submission, WORKBOOK_ROOT / lab.notes_path]
    watching = "\n" + tr(lang, "Watching {lora} and {notes} (Ctrl-C to stop)...").format(
        lora=lab.submission, notes=lab.notes_path)  # fmt: skip
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
