"""`check`: where you stand in Lab 00, block by block, graded exactly as the instructor's `grade` does.

    check                 # progress table, the first failure, type check and notes file
    check --hint B        # the hint of block B
    check --watch         # run again whenever src/minituner/lora.py or the notes file changes
    check --lang es       # in Spanish (also: LANG=es_ES.UTF-8 check)

Your lora.py is overlaid on a pristine copy of the workbook, as in grading, but with the public seed
(0) that the notebooks and a plain `pytest` use.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from labkit.grade import violation_line
from labkit.grading import DEFAULT_LIMITS, STATUS_LABELS, Grade, grade_submission
from labkit.labinfo import Lab, load_lab, user_language
from labkit.overlay import WORKBOOK_ROOT
from labkit.submission import Submission

PUBLIC_SEED = 0

_TEXT = {
    "en": {
        "head": "{title}: {points:g} / {max:g} points",
        "cols": ("block", "tests", "status"),
        "typecheck": "mypy --strict",
        "notes": "notes file",
        "first": "First failure, block {block}: {test}",
        "next": "Next: block {block}. For a hint: check --hint {block}",
        "all": "All blocks done.",
        "hint": "Hint for block {block} ({title}):",
        "problem": "Nothing could be graded:",
        "watch": "Watching {path} (Ctrl-C to stop)...",
        "notebook": "Its notebook: {notebook}",
        "rule": "Your lora.py breaks the lab's code rule (only torch, torch.nn, torch.nn.functional, numpy and "
        "a few standard modules; nothing that reaches outside the lab's code). The instructor's grader "
        "withholds such a submission for review. Fix these lines first:",
    },
    "es": {
        "head": "{title}: {points:g} / {max:g} puntos",
        "cols": ("bloque", "tests", "estado"),
        "typecheck": "mypy --strict",
        "notes": "archivo de notas",
        "first": "Primer fallo, bloque {block}: {test}",
        "next": "Siguiente: bloque {block}. Para una pista: check --hint {block}",
        "all": "Todos los bloques hechos.",
        "hint": "Pista para el bloque {block} ({title}):",
        "problem": "No se pudo calificar nada:",
        "watch": "Vigilando {path} (Ctrl-C para parar)...",
        "notebook": "Su notebook: {notebook}",
        "rule": "Tu lora.py incumple la regla de código del lab (solo torch, torch.nn, torch.nn.functional, numpy "
        "y unos pocos módulos estándar; nada que salga del código del lab). El corrector del docente "
        "retiene una entrega así para revisarla. Corrige primero estas líneas:",
    },
}


def render(grade: Grade, lab: Lab, lang: str) -> str:
    t = _TEXT[lang]
    lines = [t["head"].format(title=lab.title[lang], points=grade.points, max=grade.max_points), ""]
    if grade.violations:
        lines += [t["rule"], *(f"    {violation_line(v, lang)}" for v in grade.violations), ""]
    if grade.problem:
        return "\n".join([*lines, t["problem"], grade.problem])
    cols = t["cols"]
    lines.append(f"  {cols[0]:44} {cols[1]:>7}  {cols[2]}")
    for b in grade.blocks:
        title = f"{b.id}  {lab.block(b.id).title[lang]}"
        mark = {"done": "✓", "not started": "·"}.get(b.status, "✗")
        lines.append(f"{mark} {title:44} {b.passed:>3}/{b.total:<3}  {STATUS_LABELS[lang][b.status]}")
    for key, item in (("typecheck", grade.typecheck), ("notes", grade.notes)):
        lines.append(f"{'✓' if item.ok else '✗'} {t[key]:44} {'':7}  {item.points:g}/{item.max_points:g}")
    pending = [b for b in grade.blocks if b.status != "done"]
    lines.append("")
    if not pending:
        lines.append(t["all"])
    else:
        block = next((b for b in pending if b.status != "not started"), pending[0])
        failure = block.failures[0]
        lines += [t["first"].format(block=block.id, test=failure.name), "", _indent(failure.message.strip()[:1500]), ""]
        lines.append(t["notebook"].format(notebook=lab.block(block.id).notebook))
        lines.append(t["next"].format(block=block.id))
    for item in (grade.typecheck, grade.notes):
        if not item.ok and item.detail:
            lines += ["", _indent(item.detail.strip()[:1500])]
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def run_once(lab: Lab, lang: str) -> Grade:
    lora = WORKBOOK_ROOT / lab.submission
    notes = WORKBOOK_ROOT / lab.notes_path
    submission = Submission("yours", lora, notes if notes.is_file() else None)
    # Your own code on your own machine: no sandbox needed (the instructor's grade uses one).
    grade = grade_submission(submission, seed=PUBLIC_SEED, limits=DEFAULT_LIMITS,
                             mypy_cache=WORKBOOK_ROOT / ".mypy_cache", sandbox=False)  # fmt: skip
    print(render(grade, lab, lang), flush=True)
    return grade


def _stamp(paths: Sequence[Path]) -> tuple[float, ...]:
    return tuple(p.stat().st_mtime if p.exists() else 0.0 for p in paths)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--hint", metavar="BLOCK", help="show the hint of BLOCK (A to E)")
    parser.add_argument("--watch", action="store_true", help="run again whenever lora.py or the notes change")
    parser.add_argument("--lang", choices=["en", "es"], help="language (default: from LANG)")
    args = parser.parse_args(argv)
    lab, lang = load_lab(), user_language(args.lang)
    if args.hint:
        try:
            block = lab.block(args.hint)
        except KeyError as exc:
            parser.error(f"--hint: {exc.args[0]}")
        print(_TEXT[lang]["hint"].format(block=block.id, title=block.title[lang]))
        print(block.hint[lang])
        return 0
    grade = run_once(lab, lang)
    if not args.watch:
        complete = grade.points == grade.max_points and not grade.withheld
        return 0 if complete else 1
    watched = [WORKBOOK_ROOT / lab.submission, WORKBOOK_ROOT / lab.notes_path]
    print("\n" + _TEXT[lang]["watch"].format(path=lab.submission), flush=True)
    stamp = _stamp(watched)
    try:
        while True:
            time.sleep(1.0)
            if _stamp(watched) != stamp:
                stamp = _stamp(watched)
                print("\n" + "-" * 60)
                run_once(lab, lang)
                print("\n" + _TEXT[lang]["watch"].format(path=lab.submission), flush=True)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
