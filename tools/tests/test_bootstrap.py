"""tools/bootstrap.sh's choice of where torch comes from (`--torch-index`, which installs nothing).

PyPI's torch for Linux is the CUDA build; the bootstrap asks PyTorch's CPU index unless pip has an
index of its own, and falls back at once where that index cannot be reached.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from labkit.core.overlay import WORKBOOK_ROOT

BOOTSTRAP = WORKBOOK_ROOT / "tools" / "bootstrap.sh"
PIP_ENV = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE", "TORCH_INDEX_URL")


def _torch_index(**env: str) -> tuple[str, float]:
    clean = {k: v for k, v in os.environ.items() if k not in PIP_ENV}
    start = time.monotonic()
    result = subprocess.run(["bash", str(BOOTSTRAP), "--torch-index"], env={**clean, "PYTHON": sys.executable, **env},
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return result.stdout.strip(), time.monotonic() - start


@pytest.mark.skipif(sys.platform != "linux", reason="the CPU index is chosen on Linux only")
def test_where_torch_comes_from() -> None:
    chosen, _ = _torch_index(TORCH_INDEX_URL="https://download.pytorch.org/whl/cu126")
    assert chosen.endswith("from: https://download.pytorch.org/whl/cu126 (TORCH_INDEX_URL is set)"), chosen
    for variable in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        chosen, _ = _torch_index(**{variable: "https://mirror.example/simple", "PIP_CONFIG_FILE": os.devnull})
        assert "from: pip's own configuration (pip has an index" in chosen, (variable, chosen)
    # No pip configuration at all: the CPU index if it answers, else pip's default, at once.
    chosen, seconds = _torch_index(PIP_CONFIG_FILE=os.devnull)
    assert chosen.endswith("from: https://download.pytorch.org/whl/cpu (PyTorch's CPU index)") or chosen.endswith(
        "from: pip's own configuration (PyTorch's CPU index did not answer within 5 s)"
    ), chosen
    assert seconds < 20, f"deciding took {seconds:.1f} s"
