"""feedback.md: what a student reads about their grade, in their language.

It shows the total, why a grade is withheld, the points and rules per block, then what to fix: a
broken invariant first, then each failed test's own message, then the type check and the notes.
"""

from __future__ import annotations

from labkit.core.labinfo import load_lab
from labkit.grading.grader import STATUS_LABELS, Grade, failure_message
from labkit.grading.points import broken_message

_TEXT = {
    "en": {
        "title": "Feedback: {name}",
        "total": "Total: **{points:g} / {max:g}** points.",
        "problem": "Nothing could be graded",
        "block": "Block",
        "points": "points",
        "rules": "rules passed",
        "status": "status",
        "typecheck": "Type check",
        "notes": "Notes file",
        "failures": "What to fix",
        "none": "Every test passed.",
        "withheld": "Withheld for review",
        "withheld_why": "This submission breaks the lab's code rule (or the process running it broke the grader's protocol), so its points "
                        "are not final until an instructor has reviewed it:",
        "notices": "How it was graded",
    },
    "es": {
        "title": "Retroalimentación: {name}",
        "total": "Total: **{points:g} / {max:g}** puntos.",
        "problem": "No se pudo calificar nada",
        "block": "Bloque",
        "points": "puntos",
        "rules": "reglas superadas",
        "status": "estado",
        "typecheck": "Comprobación de tipos",
        "notes": "Archivo de notas",
        "failures": "Qué corregir",
        "none": "Todos los tests pasan.",
        "withheld": "Retenida para revisión",
        "withheld_why": "Esta entrega incumple la regla de código del laboratorio (o el proceso que la ejecutaba rompió "
                        "el protocolo del corrector), así que sus puntos no son definitivos hasta que un docente la revise:",
        "notices": "Cómo se calificó",
    },
}


def feedback_markdown(grade: Grade, lang: str) -> str:
    t, lab = _TEXT[lang], load_lab()
    lines = [f"# {t['title'].format(name=grade.name)}", "", t["total"].format(points=grade.points, max=grade.max_points), ""]
    if grade.withheld:
        lines += [f"## {t['withheld']}", "", t["withheld_why"], ""]
        lines += [f"- {violation_line(v, lang)}" for v in grade.violations] + [""]
    if grade.notices:
        lines += [f"**{t['notices']}:** " + "; ".join(n[lang] for n in grade.notices), ""]
    if grade.problem:
        lines += [f"**{t['problem']}:**", "", "```text", grade.problem[lang], "```", ""]
    lines += [f"| {t['block']} | {t['points']} | {t['rules']} | {t['status']} |", "|---|---|---|---|"]
    for b in grade.blocks:
        title = lab.block(b.id).title[lang]
        lines.append(f"| {b.id}: {title} | {b.points:g} / {b.max_points:g} | {b.rules_passed} / {b.rules} | "
                     f"{STATUS_LABELS[lang][b.status]} |")  # fmt: skip
    for label, item in ((t["typecheck"], grade.typecheck), (t["notes"], grade.notes)):
        lines.append(f"| {label} | {item.points:g} / {item.max_points:g} | | {'ok' if item.ok else '✗'} |")
    lines += ["", f"## {t['failures']}", ""]
    # With a problem (nothing imported), every test failed the same way: the problem says it once.
    failures = [] if grade.problem else [(b.id, f) for b in grade.blocks if b.status != "not started" for f in b.failures]
    not_started = [b.id for b in grade.blocks if b.status == "not started"]
    if grade.tests and all(t.outcome == "passed" for t in grade.tests):  # never when nothing ran
        lines.append(t["none"])
    if not_started:
        lines += [f"- {STATUS_LABELS[lang]['not started']}: {', '.join(not_started)} (NotImplementedError)", ""]
    if not grade.problem:
        lines += [f"- {broken_message(lab.invariant(i), b.id, lang)}\n" for b in grade.blocks for i in b.broken]
    for block_id, failure in failures:
        message = failure_message(failure.message, failure.exc_type).strip()[:2000]
        lines += [f"### {block_id} · `{failure.name}` ({failure.outcome})", "", "```text", message, "```", ""]
    for label, item in ((t["typecheck"], grade.typecheck), (t["notes"], grade.notes)):
        if not item.ok:
            lines += [f"### {label}", "", "```text", item.text(lang).strip()[:3000], "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def violation_line(violation: dict[str, object], lang: str) -> str:
    """One finding of a withheld grade, in the language (a rule's finding starts "line N: ...")."""
    text: dict[str, str] = violation["text"]  # type: ignore[assignment]
    return text[lang]


