"""feedback.md: what a student reads about their grade, in their language.

It shows the total, why a grade is withheld, the points and rules per block, then what to fix: a
broken invariant first, then each failed test's own message, then the type check and the notes.
"""

from __future__ import annotations

from labkit.core.labinfo import load_lab
from labkit.grading.grader import Grade, failure_message, status_label
from labkit.grading.points import broken_message
from minituner.i18n import N_, tr

#: A test's outcome (TestResult.outcome) as the feedback shows it, after the test's name.
OUTCOME_LABELS = {"failed": N_("failed"), "error": N_("error"), "skipped": N_("skipped"), "not run": N_("not run")}


def outcome_label(outcome: str, lang: str) -> str:
    """A test's outcome in lang (one the grader does not name: as it is)."""
    return tr(lang, OUTCOME_LABELS[outcome]) if outcome in OUTCOME_LABELS else outcome


def feedback_markdown(grade: Grade, lang: str) -> str:
    lab = load_lab()
    title = tr(lang, "Feedback: {name}").format(name=grade.name)
    total = tr(lang, "Total: **{points:g} / {max:g}** points.").format(points=grade.points, max=grade.max_points)
    lines = [f"# {title}", "", total, ""]
    if grade.withheld:
        withheld = tr(lang, "Withheld for review")
        why = tr(lang, "This submission breaks the lab's code rule (or the process running it broke the grader's "
                 "protocol), so its points are not final until an instructor has reviewed it:")  # fmt: skip
        lines += [f"## {withheld}", "", why, ""]
        lines += [f"- {violation_line(v, lang)}" for v in grade.violations] + [""]
    if grade.notices:
        notices = tr(lang, "How it was graded")
        lines += [f"**{notices}:** " + "; ".join(n[lang] for n in grade.notices), ""]
    if grade.problem:
        problem = tr(lang, "Nothing could be graded")
        lines += [f"**{problem}:**", "", "```text", grade.problem[lang], "```", ""]
    # i18n: the heads of the table of blocks: a block, its points, its rules passed (3 / 4), its status
    cols = (tr(lang, "Block"), tr(lang, "points"), tr(lang, "rules passed"), tr(lang, "status"))
    lines += [f"| {cols[0]} | {cols[1]} | {cols[2]} | {cols[3]} |", "|---|---|---|---|"]
    for b in grade.blocks:
        title = lab.block(b.id).title[lang]
        lines.append(f"| {b.id}: {title} | {b.points:g} / {b.max_points:g} | {b.rules_passed} / {b.rules} | "
                     f"{status_label(b.status, lang)} |")  # fmt: skip
    items = ((tr(lang, "Type check"), grade.typecheck), (tr(lang, "Notes file"), grade.notes))
    for label, item in items:
        lines.append(f"| {label} | {item.points:g} / {item.max_points:g} | | {'ok' if item.ok else '✗'} |")
    to_fix = tr(lang, "What to fix")
    lines += ["", f"## {to_fix}", ""]
    # With a problem (nothing imported), every test failed the same way: the problem says it once.
    failures = [] if grade.problem else [(b.id, f) for b in grade.blocks if b.status != "not started" for f in b.failures]
    not_started = [b.id for b in grade.blocks if b.status == "not started"]
    if grade.tests and all(t.outcome == "passed" for t in grade.tests):  # never when nothing ran
        lines.append(tr(lang, "Every test passed."))
    if not_started:
        lines += [f"- {status_label('not started', lang)}: {', '.join(not_started)} (NotImplementedError)", ""]
    if not grade.problem:
        lines += [f"- {broken_message(lab.invariant(i), b.id, lang)}\n" for b in grade.blocks for i in b.broken]
    for block_id, failure in failures:
        message = failure_message(failure.message, failure.exc_type).strip()[:2000]
        outcome = outcome_label(failure.outcome, lang)
        lines += [f"### {block_id} · `{failure.name}` ({outcome})", "", "```text", message, "```", ""]
    for label, item in items:
        if not item.ok:
            lines += [f"### {label}", "", "```text", item.text(lang).strip()[:3000], "```", ""]
    return "\n".join(lines).rstrip() + "\n"


def violation_line(violation: dict[str, object], lang: str) -> str:
    """One finding of a withheld grade, in the language (a rule's finding starts "line N: ...")."""
    text: dict[str, str] = violation["text"]  # type: ignore[assignment]
    return text[lang]
