"""`grade`: grade one or many submissions of Lab 00, in parallel, with limits; write the results.

    grade SUBMISSION... [--out DIR] [--jobs N] [--shard I/N] [--hidden-tests DIR] [--seed N]
    grade --merge DIR... --out DIR          # gradebook and summary of several shards' results

Every submission runs inside a bubblewrap sandbox (labkit.core.sandbox), in a worker that the judge,
which never imports it, sends the tests' scenarios to (labkit.grading.judge); where bwrap cannot run,
grade stops and says how to fix that, and --no-sandbox grades anyway, saying so in every result. A
submission that breaks the lab's code rule is graded but "withheld for review" (labkit.grading.rules).

A SUBMISSION is a bare lora.py, a directory laid out like the workbook (its lora.py and its notes
file are taken, nothing else), or a directory of such submissions (a class). With none given, the
example submissions of tools/grading/examples are written out as a class in a temporary directory
(labkit.grading.examples) and graded.

Per submission: <out>/<name>/result.json and feedback.md. For the batch: gradebook.csv and
summary.md (per-test pass rates and the most common failure messages).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from labkit.core.labinfo import Lab, load_lab, user_language
from labkit.core.overlay import Limits
from labkit.core.sandbox import SandboxUnavailable, probe
from labkit.grading.examples import materialized
from labkit.grading.grader import (
    DEFAULT_GRADER_SEED,
    DEFAULT_LIMITS,
    STATUS_LABELS,
    UNSANDBOXED,
    Grade,
    MypyCaches,
    grade_from_json,
    grade_or_report,
)
from labkit.grading.points import broken_message
from labkit.grading.submission import Submission, find_submission, holds_lora

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


def collect_submissions(paths: Sequence[Path], lab: Lab) -> list[Submission]:
    found: list[Submission] = []
    for path in paths:
        if path.is_dir() and not path.is_symlink() and not holds_lora(path, lab):  # a class: each entry is a submission
            entries = [p for p in sorted(path.iterdir()) if p.is_dir() or p.suffix == ".py" or p.is_symlink()]
            found += [find_submission(p, lab) for p in entries if not p.name.startswith((".", "_"))]
        else:
            found.append(find_submission(path, lab))
    names = Counter(s.name for s in found)
    duplicated = [n for n, c in names.items() if c > 1]
    if duplicated:
        raise SystemExit(f"grade: several submissions are named {', '.join(duplicated)}; rename them")
    return found


def shard(items: list[Submission], spec: str | None) -> list[Submission]:
    if not spec:
        return items
    try:
        i, n = (int(x) for x in spec.split("/"))
        if not 1 <= i <= n:
            raise ValueError
    except ValueError:
        raise SystemExit(f"grade: --shard expects I/N with 1 <= I <= N, got {spec!r}") from None
    return [s for k, s in enumerate(sorted(items, key=lambda s: s.name)) if k % n == i - 1]


def feedback_markdown(grade: Grade, lang: str) -> str:
    from labkit.grading.grader import failure_message

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
    if not failures and not not_started and not grade.problem:
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


def write_atomic(path: Path, text: str) -> None:
    """Write text to path whole or not at all: a temporary file beside it, then a rename.

    A kill at any moment leaves either the old file or the new one, never half of one.
    """
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", dir=path.parent, prefix=f".{path.name}.",
                                     suffix=".tmp", delete=False) as fh:  # fmt: skip
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(fh.name, 0o644)  # as a plain write would leave it (a temporary file starts private)
    os.replace(fh.name, path)


def write_results(grades: Sequence[Grade], out: Path, lang: str) -> None:
    """Each grade's result.json and feedback.md in out/<name>/, each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    for grade in grades:
        folder = out / grade.name
        folder.mkdir(exist_ok=True)
        write_atomic(folder / "feedback.md", feedback_markdown(grade, lang))
        write_atomic(folder / "result.json", json.dumps(grade.to_json(), indent=1))  # last: it says the grade is done


def write_batch(grades: Sequence[Grade], out: Path) -> None:
    """The class's gradebook.csv and summary.md, each written atomically."""
    lab = load_lab()
    grades = sorted(grades, key=lambda g: g.name)
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["submission", *(f"block_{b.id}" for b in lab.blocks), "typecheck", "notes", "total", "max",
                     "withheld_for_review", "problem"])  # fmt: skip
    for g in grades:
        review = "; ".join(violation_line(v, "en") for v in g.violations)
        writer.writerow([g.name, *(f"{b.points:g}" for b in g.blocks), f"{g.typecheck.points:g}",
                         f"{g.notes.points:g}", f"{g.points:g}", f"{g.max_points:g}", review[:500],
                         "; ".join([g.problem.get("en", "").split("\n")[0], *(n["en"] for n in g.notices)]).strip("; ")])  # fmt: skip
    write_atomic(out / "gradebook.csv", table.getvalue())
    write_atomic(out / "summary.md", summary_markdown(grades))


def summary_markdown(grades: Sequence[Grade]) -> str:
    """Item analysis: how the class did on each test, and the failure messages seen most."""
    lines = ["# Class summary", "", f"{len(grades)} submissions."]
    if grades:
        totals = sorted(g.points for g in grades)
        lines.append(f"Total points: min {totals[0]:g}, median {totals[len(totals) // 2]:g}, max {totals[-1]:g}.")
    lines += ["", "## Pass rate per test", "", "| test | passed | rate |", "|---|---|---|"]
    names = [t.name for t in grades[0].tests] if grades else []
    for i, name in enumerate(names):
        passed = sum(g.tests[i].outcome == "passed" for g in grades if i < len(g.tests))
        lines.append(f"| `{name}` | {passed} / {len(grades)} | {100 * passed / len(grades):.0f} % |")
    messages = Counter(
        f"{t.name}: {(t.message.strip().splitlines() or [''])[0][:160]}"
        for g in grades
        for t in g.tests
        if t.outcome != "passed"
    )
    lines += ["", "## Most common failure messages", "", "| count | test: first line of the message |", "|---|---|"]
    lines += [f"| {count} | {text.replace('|', '/')} |" for text, count in messages.most_common(15)]
    return "\n".join(lines) + "\n"


def grade_all(
    submissions: Sequence[Submission],
    *,
    jobs: int,
    seed: int,
    limits: Limits,
    time_limit: float,
    hidden: Path | None,
    sandbox: bool = True,
    mypy_cache: Path | None = None,
    on_grade: Callable[[Grade], None] | None = None,
) -> list[Grade]:
    """Grade submissions, jobs at a time; on_grade, when given, gets each grade as soon as it is done.

    mypy's caches (MypyCaches, one per job) are kept for the batch, in mypy_cache if given.
    """
    grades: list[Grade] = []
    with tempfile.TemporaryDirectory(prefix="labkit-mypy-") as cache, ThreadPoolExecutor(max_workers=jobs) as pool:
        caches = MypyCaches(mypy_cache or Path(cache), jobs)

        def grade_one(submission: Submission) -> Grade:
            with caches.held() as job_cache:
                return grade_or_report(submission, seed=seed, limits=limits, time_limit=time_limit, hidden=hidden,
                                       mypy_cache=job_cache, sandbox=sandbox)  # fmt: skip

        futures = {pool.submit(grade_one, s): s for s in submissions}
        for done, future in enumerate(as_completed(futures), 1):
            grade = future.result()
            grades.append(grade)
            if on_grade is not None:
                on_grade(grade)
            bar = "#" * (20 * done // len(futures))
            withheld = " (withheld for review)" if grade.withheld else ""
            print(f"\r[{bar:20}] {done}/{len(futures)}  {grade.name}: {grade.points:g} / {grade.max_points:g}{withheld}",
                  file=sys.stderr, flush=True)  # fmt: skip
    return sorted(grades, key=lambda g: g.name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", nargs="*", type=Path, help="lora.py files or submission directories")
    parser.add_argument("--out", type=Path, default=Path("grades"), help="where results go (default ./grades)")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--shard", help="grade only shard I of N (I/N), for several machines; then --merge")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="DIR", help="merge results of shards into --out")
    parser.add_argument("--hidden-tests", type=Path, help="a directory of extra graded tests, kept outside the workbook")
    parser.add_argument("--seed", type=int, default=DEFAULT_GRADER_SEED, help="the grader's seed (MINITUNER_SEED)")
    parser.add_argument("--test-timeout", type=float, default=DEFAULT_LIMITS.test_timeout_s, help="seconds per test")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds of tests per submission")
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_LIMITS.memory_mb, help="address space per process")
    parser.add_argument("--output-mb", type=int, default=DEFAULT_LIMITS.output_mb, help="output per process")
    parser.add_argument("--lang", choices=["en", "es"], help="language of the feedback (default: from LANG)")
    parser.add_argument("--mypy-cache", type=Path, help="keep mypy's cache in this directory between runs "
                        "(several shards on one machine); by default each run has its own")  # fmt: skip
    parser.add_argument("--no-sandbox", action="store_true",
                        help="grade without the bubblewrap sandbox (only for submissions you trust)")  # fmt: skip
    args = parser.parse_args(argv)
    lab, lang = load_lab(), user_language(args.lang)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.hidden_tests and not args.hidden_tests.is_dir():
        parser.error(f"--hidden-tests must be a directory, got {args.hidden_tests}")
    if args.merge:
        grades = [grade_from_json(json.loads(p.read_text(encoding="utf-8"))) for d in args.merge for p in sorted(d.glob("*/result.json"))]
        write_results(grades, args.out, lang)
        write_batch(grades, args.out)
        print(f"merged {len(grades)} results into {args.out}")
        return 0
    missing = [str(p) for p in args.submissions if not p.exists()]
    if missing:
        parser.error(f"SUBMISSION must exist: {', '.join(missing)}")
    if args.no_sandbox:
        print(f"grade: WARNING: {UNSANDBOXED[lang]}", file=sys.stderr)
    else:
        try:
            probe()
        except SandboxUnavailable as exc:
            print(f"grade: {exc}", file=sys.stderr)
            return 2
    limits = Limits(args.memory_mb, args.output_mb, args.test_timeout)
    start = time.monotonic()
    with contextlib.ExitStack() as stack:  # the examples' class lives until they are graded
        paths = args.submissions or [stack.enter_context(materialized(lab=lab))]
        submissions = shard(collect_submissions(paths, lab), args.shard)
        # Each submission's result is on disk as soon as it is graded: a crash or a kill later loses none.
        grades = grade_all(submissions, jobs=args.jobs, seed=args.seed, limits=limits, time_limit=args.time_limit,
                           hidden=args.hidden_tests.resolve() if args.hidden_tests else None,
                           sandbox=not args.no_sandbox, mypy_cache=args.mypy_cache,
                           on_grade=lambda grade: write_results([grade], args.out, lang))  # fmt: skip
    write_batch(grades, args.out)
    print(f"\ngraded {len(grades)} submissions in {time.monotonic() - start:.1f} s with {args.jobs} job(s)")
    for g in grades:
        print(f"  {g.name:28} {g.points:6g} / {g.max_points:g}  " + " ".join(f"{b.id}:{b.points:g}" for b in g.blocks)
              + (f"  ({g.problem[lang].splitlines()[0]})" if g.problem else "")
              + ("  WITHHELD FOR REVIEW" if g.withheld else ""))  # fmt: skip
    print(f"results in {args.out}/ (gradebook.csv, summary.md, <name>/feedback.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
