"""The lab's stop condition `mypy --strict` holds for the stubs and the reference."""

from __future__ import annotations

import subprocess
import sys

from labkit.core.overlay import CANDIDATE_PATH, REFERENCE, WORKBOOK_ROOT


def test_mypy_strict_passes_on_stubs_and_reference() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", CANDIDATE_PATH, str(REFERENCE)],
        cwd=WORKBOOK_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
