"""The maintainers' verification of the workbook, on the overlay mechanism.

The reference solution must pass every graded test; the student stubs must fail every graded test
with the NotImplementedError that names its block, and with nothing else (an ImportError, an
AttributeError or a shape error would mean the scaffold itself is broken).

    python -m labkit.quality.verify        prints the verdict for the reference and the stubs
"""

from __future__ import annotations

import re
import sys

from labkit.core.overlay import REFERENCE, STUBS, OverlayRun, run_overlay

__all__ = ["REFERENCE", "STUBS", "reference_problems", "stub_problems"]
STUB_MESSAGE = re.compile(r"^Block [A-E]: ")
BLOCKS = ("block_a", "block_b", "block_c", "block_d", "block_e")


def _collection_problems(run: OverlayRun) -> list[str]:
    problems = []
    if not run.outcomes:
        problems.append(f"no graded test ran (pytest exit code {run.returncode}):\n{run.output}")
    unblocked = [o.nodeid for o in run.outcomes if len(o.blocks) != 1]
    if unblocked:
        problems.append(f"tests without exactly one block marker: {unblocked}")
    missing = set(BLOCKS) - {b for o in run.outcomes for b in o.blocks}
    if run.outcomes and missing:
        problems.append(f"blocks without graded tests: {sorted(missing)}")
    return problems


def reference_problems(run: OverlayRun) -> list[str]:
    """What is wrong with a run of the reference: every graded test must pass."""
    problems = _collection_problems(run)
    problems += [f"{o.nodeid}: {o.outcome} ({o.exc_type}: {o.message})" for o in run.not_passed]
    if run.outcomes and run.returncode != 0:
        problems.append(f"pytest exit code {run.returncode}:\n{run.output}")
    return problems


def stub_problems(run: OverlayRun) -> list[str]:
    """What is wrong with a run of the stubs: every test must fail with a block's NotImplementedError."""
    problems = _collection_problems(run)
    for o in run.outcomes:
        if o.outcome != "failed" or o.exc_type != "NotImplementedError":
            problems.append(f"{o.nodeid}: {o.outcome} with {o.exc_type}: {o.message[:300]}")
        elif not STUB_MESSAGE.match(o.message):
            problems.append(f"{o.nodeid}: NotImplementedError does not name its block: {o.message!r}")
    return problems


def main() -> int:
    verdicts = [
        ("reference", REFERENCE, reference_problems),
        ("stubs", STUBS, stub_problems),
    ]
    failed = False
    for label, path, check in verdicts:
        run = run_overlay(path, env={"LANGUAGE": "en"})  # STUB_MESSAGE is the stubs' English
        problems = check(run)
        failed |= bool(problems)
        status = "FAIL" if problems else "ok"
        print(f"{label:10} {status:5} {len(run.passed)} passed, {len(run.not_passed)} not passed")
        for problem in problems:
            print(f"    {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
