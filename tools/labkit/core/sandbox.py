"""The sandbox every run of submitted code goes through when grading: Debian's bubblewrap (`bwrap`).

Inside, the run sees the system directories, the Python environment and labkit read-only, its own
copy (and the few directories the caller names) writable, a private /tmp, a fresh /proc of its own
PID namespace, and nothing else: not the workbook checkout (so no solutions/ and no conftest.py to
tamper with), not the class directory, not other submissions, not the grader's output directory,
not the grader's processes. It has no network, runs as an unprivileged user with no capabilities,
in a new session, and dies with the grader; when its first process ends, the kernel ends every
process left in its PID namespace, so nothing it started can outlive the run. The judge's worker
gets everything read-only, so that it can write nothing at all, and a seccomp filter
(labkit.core.seccomp), so that it can start no process either.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path

#: Read-only in every sandbox: the system (merged /usr; /bin, /lib... are links or binds of it).
SYSTEM_DIRS = ("/usr", "/etc")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
NOBODY = "65534"  # the user and group the sandboxed code runs as
LABKIT_DIR = Path(__file__).resolve().parents[1]
#: Set in every sandboxed process's environment, so that a test can find any that is left.
MARKER_ENV = "LABKIT_SANDBOXED"

HOW_TO_FIX = (
    "grade runs every submission inside a bubblewrap sandbox, and bwrap cannot run here. "
    "Install it (Debian/Ubuntu: sudo apt-get install bubblewrap) on a Linux machine that allows "
    "user namespaces (in a container, run the container with them allowed, e.g. Docker's "
    "--security-opt seccomp=unconfined, or grade on the host). "
    "Only if you trust every submission: grade --no-sandbox."
)


class SandboxUnavailable(RuntimeError):
    """bwrap is missing or cannot create its namespaces on this machine."""


def _python_dirs() -> list[Path]:
    """The interpreter's installation and the environment (a venv's base install lives elsewhere)."""
    dirs = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), Path(sys.prefix)}
    dirs.add(Path(sys.executable).resolve().parent.parent)
    return sorted(d for d in dirs if not any(d.is_relative_to(s) for s in SYSTEM_DIRS))


def _system_args() -> list[str]:
    args: list[str] = []
    for directory in SYSTEM_DIRS:
        args += ["--ro-bind", directory, directory]
    for link in SYSTEM_LINKS:
        path = Path(link)
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), link]
        elif path.is_dir():
            args += ["--ro-bind", link, link]
    return args


def sandboxed(
    command: Sequence[str],
    *,
    workdir: Path,
    writable: Sequence[Path] = (),
    read_only: bool = False,
    seccomp_fd: int | None = None,
) -> list[str]:
    """command wrapped in bwrap: workdir (its current directory) and writable are its only writable paths.

    read_only: nothing is writable at all, workdir, /tmp and /dev included (the judge's worker: the
    submission's code may then write nothing anywhere, so no file it makes can outgrow a limit).
    seccomp_fd: a file descriptor holding a seccomp filter for bwrap to apply (labkit.core.seccomp);
    the caller passes it on to the child (pass_fds).
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(HOW_TO_FIX)
    args = [
        bwrap, "--unshare-all", "--unshare-user", "--uid", NOBODY, "--gid", NOBODY, "--cap-drop", "ALL",
        "--die-with-parent", "--new-session", *_system_args(),
        "--proc", "/proc", "--dev", "/dev", *(("--dir", "/tmp") if read_only else ("--tmpfs", "/tmp")),
    ]  # fmt: skip
    for directory in [*_python_dirs(), LABKIT_DIR]:
        args += ["--ro-bind", str(directory), str(directory)]
    for directory in [workdir, *writable]:
        args += ["--ro-bind" if read_only else "--bind", str(directory), str(directory)]
    # The sandbox's own root (where the mount points were made) read-only too, and /dev when read_only.
    remount = ["--remount-ro", "/dev", "--remount-ro", "/"] if read_only else ["--remount-ro", "/"]
    seccomp = ["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []
    return [*args, *remount, *seccomp, "--setenv", MARKER_ENV, "1", "--chdir", str(workdir), *command]


@cache
def probe() -> None:
    """Raise SandboxUnavailable (saying how to fix it) unless a sandboxed Python runs here."""
    try:
        with tempfile.TemporaryDirectory(prefix="labkit-probe-") as tmp:
            command = sandboxed([sys.executable, "-c", "import labkit.core.report"], workdir=Path(tmp))
            proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"{HOW_TO_FIX}\n({exc})") from exc
    if proc.returncode != 0:
        raise SandboxUnavailable(f"{HOW_TO_FIX}\n(bwrap said: {proc.stderr.strip()[-500:]})")
