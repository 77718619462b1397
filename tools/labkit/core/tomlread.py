"""Read a TOML file with the standard library (tomli before Python 3.11)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def read_toml(path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        data: dict[str, Any] = tomllib.load(fh)
    return data
