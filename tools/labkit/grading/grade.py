"""`grade`: grade one or many submissions of Lab 00, in parallel, with limits; write the results.

    grade SUBMISSION... [--out DIR] [--jobs N] [--shard I/N] [--hidden-tests DIR] [--seed N] [--regrade]
    grade --merge DIR... --out DIR          # one gradebook of several shards' results

Every submission runs inside a bubblewrap sandbox (labkit.core.sandbox), in a worker that the judge,
which never imports it, sends the tests' scenarios to (labkit.grading.judge); where bwrap cannot run,
grade stops and says how to fix that, and --no-sandbox grades anyway, saying so in every result. A
submission that breaks the lab's code rule is graded but "withheld for review" (labkit.grading.rules).

A SUBMISSION is a bare lora.py, a directory laid out like the workbook (its lora.py and its notes
file are taken, nothing else), or a directory of such submissions (a class). With none given, the
example submissions of tools/grading/examples are written out as a class in a temporary directory
(labkit.grading.examples) and graded.

The output folder (labkit.grading.results) holds a result per submission, written as soon as it is
graded, and the gradebook, rebuilt from the results at the end. A class given on the command line
is the folder's class; single submissions are added to the folder's class (regrading one student
changes that student's row only). Submissions whose result is current (same files, same settings)
are not graded again unless --regrade: running the same command again finishes an interrupted class.
The first Ctrl-C or SIGTERM stops the grading: what is finished stays, and grade exits with 130.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from types import FrameType

from labkit.core import cli
from labkit.core.labinfo import Lab, load_lab
from labkit.core.leftovers import remove_left_folders, scratch_folder
from labkit.core.memory import PeakMemory
from labkit.core.overlay import STOP, Limits
from labkit.core.sandbox import SandboxUnavailable, probe
from labkit.grading import lms, results
from labkit.grading.examples import materialized
from labkit.grading.grader import (
    DEFAULT_GRADER_SEED,
    DEFAULT_LIMITS,
    UNSANDBOXED,
    Grade,
    MypyCaches,
    grade_or_report,
    grading_settings,
)
from labkit.grading.submission import Submission, find_submission, holds_lora
from minituner.i18n import tr

#: The prefix of a grade run's scratch folder (labkit.core.leftovers), in the temporary directory.
SCRATCH_PREFIX = "labkit-grade-"
INTERRUPTED = 130  # the exit status of a run stopped by Ctrl-C or SIGTERM, as a shell reports SIGINT


def is_class(path: Path, lab: Lab) -> bool:
    """Whether path is a directory of submissions (a class) rather than one submission."""
    return path.is_dir() and not path.is_symlink() and not holds_lora(path, lab)


def collect_submissions(paths: Sequence[Path], lab: Lab, lang: str = "en") -> list[Submission]:
    """The submissions at paths (a class: each of its entries); SystemExit (in lang) on names that clash."""
    found: list[Submission] = []
    for path in paths:
        if is_class(path, lab):  # each entry is a submission
            entries = [p for p in sorted(path.iterdir()) if p.is_dir() or p.suffix == ".py" or p.is_symlink()]
            found += [find_submission(p, lab) for p in entries if not p.name.startswith((".", "_"))]
        else:
            found.append(find_submission(path, lab))
    names = Counter(s.name for s in found)
    duplicated = [n for n, c in names.items() if c > 1]
    if duplicated:
        raise SystemExit("grade: " + tr(lang, "several submissions are named {names}; rename them").format(
            names=", ".join(duplicated)))  # fmt: skip
    reserved = sorted(n for n in names if n in results.RESERVED_NAMES)
    if reserved:
        raise SystemExit("grade: " + tr(lang, "{names}: a submission may not be named like a file of the output folder; "
                                        "rename it").format(names=", ".join(reserved)))  # fmt: skip
    return found


def shard(items: list[Submission], spec: str | None, lang: str = "en") -> list[Submission]:
    """Shard I of N (spec "I/N") of items, sorted by name; all of them without a spec."""
    if not spec:
        return items
    try:
        i, n = (int(x) for x in spec.split("/"))
        if not 1 <= i <= n:
            raise ValueError
    except ValueError:
        raise SystemExit("grade: " + tr(lang, "--shard expects I/N with 1 <= I <= N, got {spec}").format(spec=repr(spec))) from None
    return [s for k, s in enumerate(sorted(items, key=lambda s: s.name)) if k % n == i - 1]


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
    language: str = "en",
) -> list[Grade]:
    """Grade submissions, jobs at a time; on_grade, when given, gets each grade as soon as it is done.

    mypy's caches (MypyCaches, one per job) are kept for the batch, in mypy_cache if given. The
    peak memory of the whole process tree (labkit.core.memory) is printed at the end. A
    KeyboardInterrupt while it waits (Ctrl-C, or SIGTERM through stop_signals) stops the runs that
    are going (overlay.STOP ends every supervised process at once), drops their unfinished grades,
    starts no other, and is raised again: what on_grade was given is all that was finished.
    """
    grades: list[Grade] = []
    with (
        PeakMemory() as memory,
        tempfile.TemporaryDirectory(prefix="labkit-mypy-") as cache,
        ThreadPoolExecutor(max_workers=jobs) as pool,
    ):
        caches = MypyCaches(mypy_cache or Path(cache), jobs)

        def grade_one(submission: Submission) -> Grade:
            with caches.held() as job_cache:
                return grade_or_report(submission, seed=seed, limits=limits, time_limit=time_limit, hidden=hidden,
                                       mypy_cache=job_cache, sandbox=sandbox, language=language)  # fmt: skip

        futures = {pool.submit(grade_one, s): s for s in submissions}
        try:
            for done, future in enumerate(as_completed(futures), 1):
                grade = future.result()
                grades.append(grade)
                if on_grade is not None:
                    on_grade(grade)
                bar = "#" * (20 * done // len(futures))
                withheld = " " + tr(language, "(withheld for review)") if grade.withheld else ""
                print(f"\r[{bar:20}] {done}/{len(futures)}  {grade.name}: {grade.points:g} / {grade.max_points:g}{withheld}",
                      file=sys.stderr, flush=True)  # fmt: skip
        except BaseException:  # Ctrl-C, SIGTERM, or on_grade failing (a full disk): grade nothing more
            STOP.set()  # the running grades end now; the pool's exit waits for them, and they are dropped
            for future in futures:
                future.cancel()
            raise
        finally:
            pool.shutdown(wait=True)
            STOP.clear()
    if memory.peak:
        peak = tr(language, "peak memory of the grader and every process it started: {total:.2f} GiB with {jobs} "
                  "job(s), {per_job:.2f} GiB per job").format(
                      total=memory.peak / 2**30, jobs=jobs, per_job=memory.peak / jobs / 2**30)  # fmt: skip
        print("\n" + peak, file=sys.stderr)
    return sorted(grades, key=lambda g: g.name)


@contextlib.contextmanager
def stop_signals(lang: str = "en") -> Iterator[None]:
    """Make the first Ctrl-C or SIGTERM a KeyboardInterrupt, and ignore those that come while stopping.

    A second Ctrl-C would otherwise break the stopping itself (the tracebacks of an interrupted
    interrupt); the stopping takes seconds (grade_all). What it says then is in lang.
    """
    stopping = False
    # Translated now: the handler must not load a catalog (it may land anywhere, inside a print too).
    said = ("\ngrade: " + tr(lang, "stopping: ending the runs that are going...") + "\n").encode()

    def first(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        # os.write, not print: a signal that lands inside a print to stderr would make print reentrant.
        os.write(2, said)
        raise KeyboardInterrupt

    saved = {sig: signal.signal(sig, first) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if not stopping:  # once stopping, the rest of the run (its exit included) ignores them too
            for sig, handler in saved.items():
                signal.signal(sig, handler)


def class_listing(paths: Sequence[Path], submissions: Sequence[Submission], spec: str | None,
                  old: results.ClassList | None, lab: Lab, whole: Sequence[str] = ()) -> results.ClassList:  # fmt: skip
    """The class of the output folder after this run: a class given makes it; single submissions join it.

    whole: with --shard, the names of the whole class the shard is cut from (a merge checks them).
    """
    names = {s.name for s in submissions}
    if any(is_class(p, lab) for p in paths) or old is None:
        return results.ClassList(tuple(sorted(names)), spec, tuple(sorted(whole)) if spec else ())
    return results.ClassList(tuple(sorted(names | set(old.submissions))), old.shard, old.whole)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    lang = cli.language_of(argv)  # the language of everything grade says, and of the feedback it writes
    description = tr(lang, "Grade one or many submissions of Lab 00, in parallel, with limits; write the results.")
    parser = cli.parser("grade", description, lang)
    parser.add_argument("submissions", nargs="*", type=Path, help=tr(lang, "lora.py files or submission directories"))
    parser.add_argument("--out", type=Path, default=Path("grades"), help=tr(lang, "where results go (default ./grades)"))
    parser.add_argument("--jobs", type=int, default=1, help=tr(lang, "submissions graded at once (default 1)"))
    parser.add_argument("--shard", help=tr(lang, "grade only shard I of N (I/N), for several machines; then --merge"))
    parser.add_argument("--merge", nargs="+", type=Path, metavar="DIR",
                        help=tr(lang, "merge results of shards into --out"))  # fmt: skip
    parser.add_argument("--regrade", action="store_true",
                        help=tr(lang, "grade every submission again, current results too"))  # fmt: skip
    parser.add_argument("--roster", type=Path, help=tr(lang, "GitHub Classroom's roster export (CSV), kept in --out: "
                        "names each submission's student and writes canvas.csv and moodle.csv"))  # fmt: skip
    parser.add_argument("--hidden-tests", type=Path,
                        help=tr(lang, "a directory of extra graded tests, kept outside the workbook"))  # fmt: skip
    parser.add_argument("--seed", type=int, default=DEFAULT_GRADER_SEED,
                        help=tr(lang, "the grader's seed (MINITUNER_SEED)"))  # fmt: skip
    parser.add_argument("--test-timeout", type=float, default=DEFAULT_LIMITS.test_timeout_s,
                        help=tr(lang, "seconds per test"))  # fmt: skip
    parser.add_argument("--time-limit", type=float, default=300.0, help=tr(lang, "seconds of tests per submission"))
    parser.add_argument("--memory-mb", type=int, default=DEFAULT_LIMITS.memory_mb,
                        help=tr(lang, "address space per process"))  # fmt: skip
    parser.add_argument("--output-mb", type=int, default=DEFAULT_LIMITS.output_mb, help=tr(lang, "output per process"))
    parser.add_argument("--mypy-cache", type=Path, help=tr(lang, "keep mypy's cache in this directory between runs "
                        "(several shards on one machine); by default each run has its own"))  # fmt: skip
    parser.add_argument("--no-sandbox", action="store_true",
                        help=tr(lang, "grade without the bubblewrap sandbox (only for submissions you trust)"))  # fmt: skip
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(tr(lang, "--jobs must be at least 1, got {jobs}").format(jobs=args.jobs))
    if args.hidden_tests and not args.hidden_tests.is_dir():
        parser.error(tr(lang, "--hidden-tests must be a directory, got {path}").format(path=args.hidden_tests))
    missing = [str(p) for p in args.submissions if not p.exists()]
    if missing:
        parser.error(tr(lang, "SUBMISSION must exist: {paths}").format(paths=", ".join(missing)))
    try:
        with stop_signals(lang):
            return _merge(args, lang) if args.merge else _grade(args, lang)
    except (results.ResultsError, lms.ReviewError) as exc:
        print(f"grade: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the grader's own machine (a full disk, a folder it may not write): every finished result is kept
        print("grade: " + tr(lang, "{error}; the results written so far are kept: fix it and run the same command "
                             "again").format(error=exc), file=sys.stderr)  # fmt: skip
        return 1
    except KeyboardInterrupt:  # before any grading started: nothing to keep
        print("grade: " + tr(lang, "stopped before anything was graded"), file=sys.stderr)
        return INTERRUPTED


def _roster_text(roster: Path | None, lang: str) -> str | None:
    """The roster's text, once checked (None without --roster); kept in the output folder for later runs."""
    if roster is None:
        return None
    lms.read_roster(roster, lang)
    return roster.read_text(encoding="utf-8-sig")


def _merge(args: argparse.Namespace, lang: str) -> int:
    roster = _roster_text(args.roster, lang)
    with results.locked(args.out, lang):
        book = results.merge(args.merge, args.out, lang, roster)
    print(tr(lang, "merged {count} results into {folder}/ (gradebook.csv, summary.md)").format(
        count=len(book.graded), folder=args.out))  # fmt: skip
    _report(book, args.out, lang)
    return 0


def _grade(args: argparse.Namespace, lang: str) -> int:
    lab = load_lab()
    if args.no_sandbox:
        print("grade: " + tr(lang, "WARNING: {notice}").format(notice=tr(lang, UNSANDBOXED)), file=sys.stderr)
    else:
        try:
            probe()
        except SandboxUnavailable as exc:
            print(f"grade: {exc}", file=sys.stderr)
            return 2
    limits = Limits(args.memory_mb, args.output_mb, args.test_timeout)
    hidden = args.hidden_tests.resolve() if args.hidden_tests else None
    settings = grading_settings(seed=args.seed, limits=limits, time_limit=args.time_limit, hidden=hidden,
                                sandbox=not args.no_sandbox, language=lang)  # fmt: skip
    removed, size = remove_left_folders(SCRATCH_PREFIX)
    if removed:
        print("grade: " + tr(lang, "removed {count} temporary folder(s) that killed runs left ({size:.0f} MB)").format(
            count=removed, size=size / 2**20), file=sys.stderr)  # fmt: skip
    start = time.monotonic()
    stopped = False
    roster = _roster_text(args.roster, lang)
    with results.locked(args.out, lang), scratch_folder(SCRATCH_PREFIX), contextlib.ExitStack() as stack:
        if roster is not None:
            results.write_atomic(args.out / lms.ROSTER_FILE, roster)
        paths = args.submissions or [stack.enter_context(materialized(lab=lab))]  # the examples, as a class
        collected = collect_submissions(paths, lab, lang)
        submissions = shard(collected, args.shard, lang)
        old = results.read_class(args.out, lang)
        listing = class_listing(paths, submissions, args.shard, old, lab, [s.name for s in collected])
        results.write_class(args.out, listing)
        done, _ = results.read_results(args.out)
        todo = [s for s in submissions
                if args.regrade or s.name not in done or not results.is_current(done[s.name], s, settings)]  # fmt: skip
        if len(todo) < len(submissions):
            print(tr(lang, "{kept} of {count} submissions already have a current result (same files, same settings) "
                     "and are kept; --regrade grades them again").format(
                         kept=len(submissions) - len(todo), count=len(submissions)))  # fmt: skip

        graded: list[str] = []

        def keep(grade: Grade) -> None:  # on disk as soon as it is graded: a crash or a kill later loses none
            shard_noted = dataclasses.replace(grade, audit={**grade.audit, "shard": args.shard})
            results.write_results([shard_noted], args.out, lang)
            graded.append(grade.name)

        try:
            grade_all(todo, jobs=args.jobs, seed=args.seed, limits=limits, time_limit=args.time_limit, hidden=hidden,
                      sandbox=not args.no_sandbox, mypy_cache=args.mypy_cache, on_grade=keep, language=lang)  # fmt: skip
        except KeyboardInterrupt:
            stopped = True
        book = results.rebuild(args.out, lang)
    print("\n" + tr(lang, "graded {graded} of {count} submission(s) to grade in {seconds:.1f} s with {jobs} job(s)").format(
        graded=len(graded), count=len(todo), seconds=time.monotonic() - start, jobs=args.jobs))  # fmt: skip
    withheld = tr(lang, "WITHHELD FOR REVIEW")
    for g in book.graded:
        print(f"  {g.name:28} {g.points:6g} / {g.max_points:g}  " + " ".join(f"{b.id}:{b.points:g}" for b in g.blocks)
              + (f"  ({g.problem[lang].splitlines()[0]})" if g.problem else "")
              + (f"  {withheld}" if g.withheld else ""))  # fmt: skip
    print(tr(lang, "results in {folder}/ (gradebook.csv, summary.md, <name>/feedback.md)").format(folder=args.out))
    _report(book, args.out, lang)
    if stopped:
        print("grade: " + tr(lang, "stopped. {graded} of {count} submissions have a result, and the gradebook holds "
                             "them; run the same command again to grade the others").format(
                                 graded=len(book.graded), count=len(book.graded) + len(book.missing)),
              file=sys.stderr)  # fmt: skip
        return INTERRUPTED
    return 0


def _report(book: results.Gradebook, out: Path, lang: str) -> None:
    """What the gradebook leaves out, on stderr: submissions of no rostered student, results not of the class."""
    if book.unrostered:
        print("grade: " + tr(lang, "{count} submission(s) match no student of the roster and are not in canvas.csv or "
                             "moodle.csv: {names}").format(count=len(book.unrostered), names=", ".join(book.unrostered)),
              file=sys.stderr)  # fmt: skip
    if book.stale:
        print("grade: " + tr(lang, "{count} result(s) in {folder}/ are not of this class and are left out of the "
                             "gradebook: {names} (delete those folders if they are not needed)").format(
                                 count=len(book.stale), folder=out, names=", ".join(book.stale)),
              file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
