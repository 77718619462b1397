"""Tests of the overlay mechanism and of the verification built on it.

These are the maintainers' proof that the workbook works: the reference passes every graded test,
the stubs fail every one for the right reason, and the lab's own commands select what they say.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from labkit.core.overlay import (
    CANDIDATE_PATH,
    FORK_SERVER,
    PRISTINE_PATHS,
    WORKBOOK_ROOT,
    OverlayRun,
    pristine_copy,
    run_overlay,
)
from labkit.quality.verify import REFERENCE, STUBS, reference_problems, stub_problems

LAB_K_EXPRESSION = "lora_init_identity or param_count or merge or freeze or roundtrip"


@pytest.fixture(scope="module")
def reference_run() -> OverlayRun:
    return run_overlay(REFERENCE)


@pytest.fixture(scope="module")
def stub_run() -> OverlayRun:
    return run_overlay(STUBS)


def test_reference_passes_every_graded_test(reference_run: OverlayRun) -> None:
    assert reference_problems(reference_run) == []
    assert len(reference_run.passed) >= 50


def test_stubs_fail_every_graded_test_with_not_implemented(
    stub_run: OverlayRun, reference_run: OverlayRun
) -> None:
    assert stub_problems(stub_run) == []
    assert {o.nodeid for o in stub_run.outcomes} == {o.nodeid for o in reference_run.outcomes}


def test_pristine_copy_holds_only_the_graded_parts(tmp_path: Path) -> None:
    dest = pristine_copy(tmp_path / "copy")
    top = {p.name for p in dest.iterdir()}
    assert top == {Path(rel).parts[0] for rel in PRISTINE_PATHS}
    assert not (dest / "solutions").exists(), "a candidate must not be able to read the solutions"
    assert (dest / CANDIDATE_PATH).read_text() == (WORKBOOK_ROOT / CANDIDATE_PATH).read_text()


def test_broken_candidate_is_reported_not_raised(tmp_path: Path) -> None:
    broken = tmp_path / "lora.py"
    broken.write_text("def oops(:\n")
    run = run_overlay(broken)
    # No test ran; the module's collection error is the one record, and it says why.
    assert [(o.nodeid, o.outcome, o.exc_type) for o in run.outcomes] == [
        ("tests/test_minituner.py", "error", "CollectionError")
    ]
    assert run.returncode not in (0, None)
    assert "SyntaxError" in run.output and "SyntaxError" in run.outcomes[0].message
    assert reference_problems(run) and stub_problems(run)


def test_extra_pytest_args_reach_the_run() -> None:
    # The reference restricted to block E: only the selected tests run, and they pass.
    run = run_overlay(REFERENCE, pytest_args=["-m", "block_e"])
    assert run.outcomes and all(o.blocks == ("block_e",) for o in run.outcomes)
    assert not run.not_passed


def _collect(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "tests/test_minituner.py", *args],
        cwd=WORKBOOK_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {line for line in proc.stdout.splitlines() if "::" in line}


def test_lab_stop_command_selects_blocks_a_to_d() -> None:
    selected = _collect("-k", LAB_K_EXPRESSION)
    blocks_a_to_d = _collect("-m", "block_a or block_b or block_c or block_d")
    assert selected == blocks_a_to_d and selected
    assert not selected & _collect("-m", "block_e")


# ---------------------------------------------------------------- the two runners
def _verdicts(run: OverlayRun) -> list[tuple[str, str, str | None]]:
    return [(o.nodeid, o.outcome, o.exc_type) for o in run.outcomes]


def test_the_two_runners_give_the_same_verdicts(tmp_path: Path) -> None:
    # The fork server (unsandboxed runs) is only a faster way to what a fresh process in the sandbox
    # gives: the reference, the stubs and a variant that fails some tests get exactly the same results.
    variant = tmp_path / "lora.py"
    variant.write_text(REFERENCE.read_text(encoding="utf-8").replace(
        "self.lora_A.zero_()\n        self.lora_B.zero_()", "self.lora_A.zero_()"), encoding="utf-8")  # fmt: skip
    assert FORK_SERVER, "the maintainers' checks run on Linux, where unsandboxed runs are forked"
    for candidate in (REFERENCE, STUBS, variant):
        forked = run_overlay(candidate)
        assert _verdicts(forked) == _verdicts(run_overlay(candidate, sandbox=True)), candidate
        assert forked.returncode == (0 if candidate == REFERENCE else 1) and not forked.evidence
    assert any(o.outcome == "failed" for o in run_overlay(variant).outcomes)


def test_a_forked_run_is_stopped_and_its_session_killed(tmp_path: Path) -> None:
    endless = tmp_path / "lora.py"
    endless.write_text("import os, pathlib\npathlib.Path(os.environ['MARK']).write_text(str(os.getpid()))\n"
                       "while True:\n    pass\n", encoding="utf-8")  # fmt: skip
    mark = tmp_path / "pid"
    run = run_overlay(endless, timeout=5, env={"MARK": str(mark)})
    assert run.returncode is None and "stopped after 5 s" in run.output
    pid = int(mark.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_peak_memory_counts_the_processes_a_run_started() -> None:
    from labkit.core.memory import PeakMemory

    hold = "import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(1.5)"
    with PeakMemory(interval_s=0.05) as memory:
        subprocess.run([sys.executable, "-c", hold], check=True)
    assert memory.peak > 300 * 2**20, f"{memory.peak / 2**20:.0f} MiB: the child's 300 MiB were not counted"


def test_only_the_folders_of_runs_that_are_gone_are_removed(tmp_path: Path) -> None:
    from labkit.core.leftovers import OWNER_FILE, remove_left_folders, scratch_folder

    with scratch_folder("labkit-test-scratch-") as mine:
        assert os.environ["TMPDIR"] == tempfile.gettempdir() == str(mine) and (mine / OWNER_FILE).is_file()
        assert remove_left_folders("labkit-test-scratch-", mine.parent) == (0, 0), "a live run's folder went"
    assert not mine.exists() and tempfile.gettempdir() != str(mine)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, foreign = tmp_path / "labkit-grade-dead", tmp_path / "labkit-grade-foreign"
    for folder in (dead, foreign):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "data").write_bytes(b"x" * 1000)
    owner = f"{gone.stdout.strip()} 1\n"  # a process that has ended
    (dead / OWNER_FILE).write_text(owner, encoding="utf-8")
    assert remove_left_folders("labkit-grade-", tmp_path) == (1, 1000 + len(owner))
    assert not dead.exists() and foreign.is_dir(), "only a folder whose owner is known and gone is removed"
