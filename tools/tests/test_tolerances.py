"""The graded tests' float tolerances hold for correct code under many seeds (issue 20, first step).

Each numeric check's tolerance is derived from the rounding of what it checks (see the constants in
tests/test_minituner.py); here the reference and every correct alternative of the bug zoo run the
tests that carry one (the merge rule for one layer, the merge of a wrapped MiniGPT, the round trip)
under SEEDS seeds each, through the same overlay as always (the fork server). A correct solution
must pass under every seed: a tolerance that fails one is a tolerance that takes points from a
correct student. The zoo (test_zoo) shows the same tolerances still catch every merge bug.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from labkit.core.overlay import REFERENCE, run_overlay
from labkit.quality.zoo import load_alternatives

SEEDS = range(200)
TOLERANCE_TESTS = "merge_equivalence or merge_wrapped or roundtrip_same_model or roundtrip_into_fresh_model"


def _failures(candidate: Path, seed: int) -> list[str]:
    run = run_overlay(candidate, pytest_args=["-k", TOLERANCE_TESTS], env={"MINITUNER_SEED": str(seed)})
    if not run.outcomes:
        return [f"seed {seed}: nothing ran\n{run.output[-500:]}"]
    return [f"seed {seed}: {o.name}: {o.message.splitlines()[0][:200]}" for o in run.not_passed]


def test_correct_code_passes_every_tolerance_under_every_seed() -> None:
    reference = REFERENCE.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="labkit-tolerances-") as tmp:
        candidates = [REFERENCE]
        for alternative in load_alternatives():
            path = Path(tmp) / f"{alternative.id}.py"
            path.write_text(alternative.apply(reference), encoding="utf-8")
            candidates.append(path)
        with ThreadPoolExecutor(max_workers=2) as pool:
            found = list(pool.map(lambda job: _failures(*job), [(c, s) for c in candidates for s in SEEDS]))
    failures = [line for lines in found for line in lines]
    assert not failures, f"{len(failures)} failure(s) of correct code:\n" + "\n".join(failures[:20])
