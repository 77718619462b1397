"""The GitHub Classroom autograding workflow of Lab 00, generated from labs/lab.toml, and its steps.

    python -m labkit.grading.classroom            # print it
    python -m labkit.grading.classroom --write    # write tools/grading/classroom.yml
    python -m labkit.grading.classroom --step test_x test_inv ...   # one step: exit 0 when it earns
    python -m labkit.grading.classroom --typecheck | --notes         # the type check's and the notes' steps

The student edition (labkit.grading.release) holds it as .github/workflows/classroom.yml. Its first
step puts back the files that decide a grade (PINNED: the graded tests, their conftest, the lab's
rules, pytest's configuration) as the release made them, from the repository's first commit (GitHub
Classroom's copy of the release), and checks them against the release's sha256: tests a student
edits and commits change nothing, and a rewritten history fails the run. Then each rule of a block
(a graded test function, all its cases) is one step worth the lab's rule_points, scored as `grade`
scores it (labkit.grading.points): `--step RULE GATE...` runs the rule's tests with the tests of its
block's invariants (GATE), with the grader's seed, and earns when every case of the rule passes and
no invariant's check failed. The type check earns as in `grade` (mypy --strict passes, once a graded
test passes, with no typing escape); the notes earn their points when all their values hold (`grade`
gives each value its share). A student can still edit the workflow itself: its results are feedback,
and grades come from `grade` (see the instructor guide). labkit.grading.workflows writes this
workflow together with grade-class.yml, which grades a whole class with `grade` in shards.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from labkit.core.labinfo import Lab, load_lab
from labkit.core.overlay import CANDIDATE_PATH, WORKBOOK_ROOT, run_overlay
from labkit.grading.grader import (
    DEFAULT_GRADER_SEED,
    DEFAULT_LIMITS,
    expected_tests,
    grade_submission,
    run_mypy,
    typecheck_item,
    typing_escapes,
)
from labkit.grading.points import Case, block_rules, broken_invariants, cases_of, graded_function
from labkit.grading.submission import find_submission

WORKFLOW_PATH = WORKBOOK_ROOT / "tools" / "grading" / "classroom.yml"
#: What the graded tests run with besides lora.py (overlay.PRISTINE_PATHS): the workflow takes it as released.
PINNED = ("conftest.py", "pyproject.toml", "labs", "src/minituner", "tests")
STEP_ENV = {"MINITUNER_SEED": str(DEFAULT_GRADER_SEED)}  # the grader's seed, not the students' 0


def pinned_digests() -> dict[str, str]:
    """The sha256 of every file under PINNED (lora.py aside) as the student edition holds it, by path."""
    from labkit.grading.release import edition_files, load_edition, under

    files = edition_files(load_edition(), committed=False)  # generated to be committed with them
    pinned = [p for p in files if under(p, PINNED)]
    return {p: hashlib.sha256(files[p]).hexdigest() for p in sorted(pinned) if p != CANDIDATE_PATH}


def restore_script(digests: Mapping[str, str]) -> list[str]:
    """The restore step's shell lines: PINNED as in the first commit (the student's lora.py kept), checked.

    Every file is checked against its digest, and no other file may lie under PINNED (a tests/conftest.py
    the student added, say).
    """
    paths = " ".join(PINNED)
    return [
        'root="$(git rev-list --max-parents=0 HEAD | tail -n 1)"',
        f'keep="$(mktemp)" && cp {CANDIDATE_PATH} "$keep"',
        f"rm -rf {paths}",
        f'git checkout "$root" -- {paths}',
        f'cp "$keep" {CANDIDATE_PATH}',
        "sha256sum --check --strict --quiet <<'PINNED'",
        *(f"{digest}  {path}" for path, digest in digests.items()),
        "PINNED",
        """cat > "$keep.files" <<'FILES'""",
        *digests,
        "FILES",
        f'find {paths} -type f ! -path {CANDIDATE_PATH} | LC_ALL=C sort | diff "$keep.files" -',
    ]


def render_workflow(lab: Lab, digests: Mapping[str, str] | None = None) -> str:
    """The workflow; digests: the sha256 of the PINNED files as released (by default, the edition's)."""
    digests = digests or pinned_digests()
    rules = block_rules(lab, expected_tests())
    steps = []
    step = ".venv/bin/python -m labkit.grading.classroom"
    for b in lab.blocks:
        gate = [name for inv in lab.invariants for name in inv.tests if name in rules[b.marker]]
        for k, name in enumerate(rules[b.marker], start=1):
            selected = " ".join([name, *(g for g in gate if g != name)])
            steps.append((f"block-{b.id.lower()}-{k}", f"Block {b.id}: {name}", f"{step} --step {selected}", lab.rule_points))
    steps.append(("typecheck", lab.typecheck.title["en"], f"{step} --typecheck", lab.typecheck.points))
    steps.append(("notes", lab.notes.title["en"], f"{step} --notes", lab.notes.points))
    lines = [
        f"# GitHub Classroom autograding for {lab.title['en']}. Generated by `python -m labkit.grading.workflows --write`",
        "# from labs/lab.toml; do not edit by hand. `release` puts it in the student edition as .github/workflows/classroom.yml.",
        "name: Autograding Tests",
        "on: [push, workflow_dispatch, repository_dispatch]",
        "permissions:",
        "  checks: write",
        "  actions: read",
        "  contents: read",
        "jobs:",
        "  run-autograding-tests:",
        "    runs-on: ubuntu-latest",
        "    if: github.actor != 'github-classroom[bot]'",
        "    steps:",
        "      - name: Checkout code",
        "        uses: actions/checkout@v4",
        "        with:",
        "          fetch-depth: 0  # the whole history: the first commit holds the release",
        "      # What the graded tests run with (lora.py aside) as released, whatever was committed since.",
        "      - name: The graded files, as released",
        "        shell: bash",
        "        run: |",
        *(f"          {line}" for line in restore_script(digests)),
        "      - name: Set up the workbook",
        "        run: bash tools/bootstrap.sh",
    ]
    for step_id, title, command, points in steps:
        lines += [
            f"      - name: \"{title}\"",
            f"        id: {step_id}",
            "        uses: classroom-resources/autograding-command-grader@v1",
            "        with:",
            f"          test-name: \"{title}\"",
            "          setup-command: ''",
            f"          command: {command}",
            "          timeout: 10",
            f"          max-score: {points:g}",
        ]
    lines += [
        "      - name: Autograding Reporter",
        "        uses: classroom-resources/autograding-grading-reporter@v1",
        "        env:",
        *(f"          {step_id.upper()}_RESULTS: \"${{{{steps.{step_id}.outputs.result}}}}\"" for step_id, *_ in steps),
        "        with:",
        f"          runners: {','.join(step_id for step_id, *_ in steps)}",
    ]
    return "\n".join(lines) + "\n"


def step_earns(lab: Lab, rule: str, cases: Sequence[Case]) -> bool:
    """Whether a step earns its points: every case of rule passed, and no invariant's check failed.

    cases: the outcomes of the rule's tests and of its block's invariant tests.
    """
    mine = [passed for nodeid, passed, _ in cases if graded_function(nodeid, lab) == rule]
    return bool(mine) and all(mine) and not broken_invariants(lab, cases)


def run_step(lab: Lab, rule: str, gate: Sequence[str], candidate: Path | None = None) -> int:
    """Run one step on candidate (the workbook's lora.py) and print its tests' outcomes: 0 when it earns, else 1."""
    candidate = candidate or WORKBOOK_ROOT / lab.submission
    run = run_overlay(candidate, tests=[f"{lab.graded_tests}::{name}" for name in (rule, *gate)], env=STEP_ENV)
    for outcome in run.outcomes:
        print(f"{outcome.outcome:8} {outcome.name}" + (f": {outcome.message.splitlines()[0][:300]}" if outcome.message else ""))
    if not run.outcomes:
        print(run.output[-3000:])
    earns = step_earns(lab, rule, cases_of(run.outcomes))
    return 0 if earns else 1


def run_typecheck(lab: Lab, candidate: Path | None = None) -> int:
    """The type check's step, as `grade` counts it: mypy --strict passes, a graded test passes, no escape."""
    candidate = candidate or WORKBOOK_ROOT / lab.submission
    any_passed = bool(run_overlay(candidate, env=STEP_ENV).passed)
    code, output = run_mypy(candidate, lab, DEFAULT_LIMITS, None, sandbox=False)
    item = typecheck_item(code, output, lab, any_passed, typing_escapes(candidate.read_text(encoding="utf-8")))
    print(item.text("en") or "mypy --strict passes")
    return 0 if item.ok else 1


def run_notes(lab: Lab, submission: Path | None = None) -> int:
    """The notes' step: every value of the notes file holds, measured with the submission's own code."""
    grade = grade_submission(find_submission(submission or WORKBOOK_ROOT, lab), seed=DEFAULT_GRADER_SEED, sandbox=False)
    print(grade.notes.text("en"))
    return 0 if grade.notes.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.grading.classroom", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write {WORKFLOW_PATH.relative_to(WORKBOOK_ROOT)}")
    parser.add_argument("--step", nargs="+", metavar="TEST", help="run one step: a rule, then its block's invariant tests")
    parser.add_argument("--typecheck", action="store_true", help="run the type check's step")
    parser.add_argument("--notes", action="store_true", help="run the notes' step")
    args = parser.parse_args(argv)
    if args.step:
        return run_step(load_lab(), args.step[0], args.step[1:])
    if args.typecheck:
        return run_typecheck(load_lab())
    if args.notes:
        return run_notes(load_lab())
    text = render_workflow(load_lab())
    if args.write:
        WORKFLOW_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {WORKFLOW_PATH.relative_to(WORKBOOK_ROOT)}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
