"""How fast the workbook itself is: each figure is a command that measures it and prints it.

    python -m labkit.bench.speed suite            the graded tests on the reference, beside a bare import torch
    python -m labkit.bench.speed nbval            nbval on every notebook, reference solution
    python -m labkit.bench.speed site             the site's strict build
    python -m labkit.bench.speed grade            grading one complete submission
    python -m labkit.bench.speed grade-examples   grading the example submissions, one job
    python -m labkit.bench.speed all --publish    all of them (about 11 minutes here), then the site's table
    python -m labkit.bench.speed grade-marginal   grading's cost per extra submission, beside a bare import torch

Each runs the real thing (the overlay, nbval, mkdocs, the grader) and fails loudly if it did not
succeed: a fast wrong run is not a figure.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.bench.timing import Stat, interleaved, machine
from labkit.core.overlay import REFERENCE, WORKBOOK_ROOT

BIN = Path(sys.executable).parent
SUBCOMMANDS = ("suite", "nbval", "site", "grade", "grade-examples", "all", "grade-marginal")
#: The class sizes grade-marginal times: the difference, per submission, is the marginal cost.
MARGINAL_CLASS = (1, 6)


@dataclass(frozen=True)
class Measurement:
    id: str
    command: str  # the command that measures it, as the page shows it
    run: Callable[[], object]
    repeat: int
    count: int = 0  # how many items one run handles, where the label needs it


def _checked(command: Sequence[str]) -> None:
    result = subprocess.run(command, cwd=WORKBOOK_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def _import_torch() -> None:
    _checked([sys.executable, "-c", "import torch"])


def _graded_suite() -> None:
    from labkit.core.overlay import run_overlay

    run = run_overlay(REFERENCE)
    if run.returncode != 0 or run.not_passed:
        raise RuntimeError(f"the graded suite did not pass on the reference:\n{run.output[-2000:]}")


def _nbval() -> None:
    from labkit.content.notebooks import run_nbval

    run = run_nbval(REFERENCE)
    if run.returncode != 0:
        raise RuntimeError(f"nbval did not pass on the reference:\n{run.output[-2000:]}")


def _site() -> None:
    with tempfile.TemporaryDirectory(prefix="labkit-site-") as out:
        _checked([str(BIN / "mkdocs"), "build", "--strict", "--quiet", "--site-dir", out])


def _grade_one() -> None:
    from labkit.core.labinfo import load_lab
    from labkit.grading.examples import materialized
    from labkit.grading.grader import grade_submission
    from labkit.grading.submission import find_submission

    # The complete example: the reference's code and a notes file, as a finished student hands in.
    with materialized() as examples:
        grade = grade_submission(find_submission(examples / "complete", load_lab()))
    if grade.points != grade.max_points:
        raise RuntimeError(f"the complete example submission got {grade.points} / {grade.max_points}")


def _grade_class(size: int) -> Callable[[], None]:
    """Grading a class of size distinct copies of the complete example (each with its notes), one job, sandboxed."""

    def run() -> None:
        from labkit.core.labinfo import load_lab
        from labkit.grading import grade as grade_cli
        from labkit.grading.examples import materialized
        from labkit.grading.grader import DEFAULT_GRADER_SEED, DEFAULT_LIMITS

        lab = load_lab()
        with materialized() as examples, tempfile.TemporaryDirectory(prefix="labkit-class-") as tmp:
            for i in range(size):
                student = Path(tmp) / f"student{i}"
                shutil.copytree(examples / "complete", student)
                with open(student / lab.submission, "a", encoding="utf-8") as fh:
                    fh.write(f"\n# student {i}\n")  # distinct files: no cache may serve one for another
            submissions = grade_cli.collect_submissions([Path(tmp)], lab)
            grades = grade_cli.grade_all(submissions, jobs=1, seed=DEFAULT_GRADER_SEED, limits=DEFAULT_LIMITS,
                                         time_limit=300.0, hidden=None)  # fmt: skip
        wrong = [(g.name, g.points) for g in grades if g.points != g.max_points]
        if wrong:
            raise RuntimeError(f"copies of the complete example did not get full marks: {wrong}")

    return run


def _example_count() -> int:
    from labkit.grading.examples import example_names

    return len(example_names())


def _grade_examples() -> None:
    with tempfile.TemporaryDirectory(prefix="labkit-grades-") as out:
        _checked([sys.executable, "-m", "labkit.grading.grade", "--out", out, "--jobs", "1"])


def measurements(repeat: int | None) -> dict[str, list[Measurement]]:
    """Subcommand -> what it measures (the suite goes side by side with its baseline)."""

    def m(id_: str, sub: str, run: Callable[[], object], default: int, count: int = 0) -> Measurement:
        return Measurement(id_, f"python -m labkit.bench.speed {sub}", run, repeat or default, count)

    table = {  # keys: SUBCOMMANDS
        "suite": [m("import_torch", "suite", _import_torch, 5), m("graded_suite", "suite", _graded_suite, 5)],
        "nbval": [m("nbval", "nbval", _nbval, 1)],
        "site": [m("site", "site", _site, 3)],
        "grade": [m("grade_one", "grade", _grade_one, 3)],
        "grade-examples": [m("grade_examples", "grade-examples", _grade_examples, 1, _example_count())],
    }
    marginal = [m("import_torch", "grade-marginal", _import_torch, 5)]
    # Three runs each: the median leaves out the first run's one-time costs (the fork server, collecting the tests).
    marginal += [m(f"grade_class_{n}", "grade-marginal", _grade_class(n), 3, n) for n in MARGINAL_CLASS]
    return {**table, "all": [x for group in table.values() for x in group], "grade-marginal": marginal}


def measure(group: Sequence[Measurement], log: Callable[[str], None]) -> list[dict[str, Any]]:
    results = []
    pending = list(group)
    while pending:
        # Measurements of one subcommand with equal repeats run interleaved: their ratio is fair.
        batch = [x for x in pending if x.command == pending[0].command and x.repeat == pending[0].repeat]
        pending = [x for x in pending if x not in batch]
        log(f"timing {', '.join(x.id for x in batch)} ({batch[0].repeat} run(s) each)")
        samples = interleaved({x.id: x.run for x in batch}, rounds=batch[0].repeat, warmup=0)
        for x in batch:
            results.append({"id": x.id, "command": x.command, "count": x.count, "seconds": Stat.of(samples[x.id]).to_json()})
    return results


def main(argv: Sequence[str] | None = None) -> int:
    from labkit.bench import page as benchpage

    parser = argparse.ArgumentParser(prog="python -m labkit.bench.speed", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=SUBCOMMANDS, help="what to measure")
    parser.add_argument("--repeat", type=int, help="runs of each command (default: 5 for the suite, 3 for site and grade, else 1)")
    parser.add_argument("--publish", action="store_true", help="with 'all': write docs/benchmarks/workbook.json and the site's table")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.publish and args.what != "all":
        parser.error("--publish needs 'all': the page's table shows every figure from one run")
    rows = measure(measurements(args.repeat)[args.what], log=lambda line: print(line, file=sys.stderr, flush=True))
    for row in rows:
        s = Stat.from_json(row["seconds"])
        print(f"{row['id']:16} median {s.median:8.2f} s   quartiles {s.q1:.2f}-{s.q3:.2f} s   runs {s.n}")
    by_id = {row["id"]: Stat.from_json(row["seconds"]).median for row in rows}
    if args.what == "suite":
        print(f"graded suite / import torch: {by_id['graded_suite'] / by_id['import_torch']:.1f}")
    if args.what == "grade-marginal":
        small, large = MARGINAL_CLASS
        extra = (by_id[f"grade_class_{large}"] - by_id[f"grade_class_{small}"]) / (large - small)
        print(f"grading's marginal cost: {extra:.2f} s per submission = {extra / by_id['import_torch']:.2f} x import torch")
    if args.publish:
        for path in benchpage.publish_workbook({"machine": machine(), "measurements": rows}):
            print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
