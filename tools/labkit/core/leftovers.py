"""Nothing of a killed run stays behind: its processes die with it, its temporary folders go next time.

A SIGKILL gives a process no chance to clean up. So every process a run starts asks the kernel to be
killed when the thread that started it ends (die_with_parent), and every temporary file or folder
the run makes lives in one scratch folder of its own (scratch_folder) that names the run's process:
the next run removes the folders of runs whose process is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h
OWNER_FILE = "owner"
#: prctl, looked up now: a child between fork and exec must not load libraries (a lock held by another
#: thread of the parent at fork time would never be released there).
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent(parent: int) -> None:
    """In a child between fork and exec: SIGKILL when the thread that started it ends (Linux only).

    That thread is the grader's, which waits for the child; if the grader is killed, so is the child,
    and so is whatever the child started the same way. parent: the pid of the process that forked it;
    if it is already gone (it died before the request was made), the child ends at once.
    """
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)


def _process_start(pid: int) -> str | None:
    """When process pid started (clock ticks since boot), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22, counted after the command name


def _owner_alive(folder: Path) -> bool:
    """Whether the process that made folder still runs (a reused pid has another start time)."""
    try:
        pid, start = (folder / OWNER_FILE).read_text(encoding="utf-8").split()
        if start == "None":  # no /proc where it was made: whether the pid runs is all there is to know
            os.kill(int(pid), 0)
            return True
        return _process_start(int(pid)) == start
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        return True  # not ours to judge: only folders with a readable owner are ever removed


def remove_left_folders(prefix: str, base: Path | None = None) -> tuple[int, int]:
    """Remove the scratch folders prefix* in base (the temporary directory) whose run is gone; (count, bytes)."""
    base = Path(base or tempfile.gettempdir())
    count = size = 0
    for folder in base.glob(f"{prefix}*"):
        if folder.is_dir() and not folder.is_symlink() and (folder / OWNER_FILE).is_file() and not _owner_alive(folder):
            size += sum(p.lstat().st_size for p in folder.rglob("*") if not p.is_dir())
            shutil.rmtree(folder, ignore_errors=True)
            count += 1
    return count, size


@contextlib.contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    """A folder for all of this run's temporary files (tempfile's and its children's TMPDIR), removed at the end.

    It names its process (OWNER_FILE), so that remove_left_folders can tell a killed run's folder.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    (folder / OWNER_FILE).write_text(f"{os.getpid()} {_process_start(os.getpid())}\n", encoding="utf-8")
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = str(folder)
    os.environ["TMPDIR"] = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = saved[0]
        if saved[1] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved[1]
        shutil.rmtree(folder, ignore_errors=True)
