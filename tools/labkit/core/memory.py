"""The memory a process and every process it started hold, sampled while they run (Linux's /proc).

Each process counts its proportional set size (PSS: a page shared by k processes counts 1/k in
each), so the fork server and its children, which share torch's pages, are not counted twice;
where PSS cannot be read (another user's process), its resident set size instead.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

PROC = Path("/proc")


def _parents() -> dict[int, int]:
    """pid -> parent pid, for every process visible now."""
    parents = {}
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def tree(root: int) -> list[int]:
    """root and every process descended from it."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def process_bytes(pid: int) -> int:
    """pid's PSS (its RSS where the PSS cannot be read), in bytes; 0 for a process that is gone."""
    for name, key in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
        try:
            for line in (PROC / str(pid) / name).read_text(encoding="utf-8").splitlines():
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return 0


class PeakMemory:
    """The peak, over a with block, of the memory of this process's whole tree; sampled every interval_s.

    Without /proc (not Linux), peak stays 0.
    """

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while PROC.is_dir():
            self.peak = max(self.peak, sum(process_bytes(pid) for pid in tree(os.getpid())))
            if self._done.wait(self.interval_s):
                return

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._done.set()
        self._thread.join()
