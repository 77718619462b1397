"""The warm runner: pytest runs for trusted candidates, forked from a process that imported torch once.

Starting a fresh Python that imports torch and pytest costs seconds, and the maintainers' checks run
the graded tests on a hundred trusted candidates (the reference, the stubs, the bug zoo's variants).
A fork server pays that once: it imports torch, numpy and pytest, then forks one child per run. The
child takes the run's working directory, environment and limits, points its output at a file, and
calls pytest.main with the same arguments the process runner would give `python -m pytest`; its own
copy of the interpreter, its own results. The server never imports the candidate's package, the
report plugin or a conftest, so every child imports them fresh from its own overlaid copy.

The run is judged exactly as a process run is (labkit.core.overlay): from outside, by reading the
report file, and a child that runs too long is killed with its whole session. Submitted code never
comes here: it runs in a fresh process inside the sandbox.

Protocol, one JSON object per line: the client sends {"command", "cwd", "env", "output", "memory_mb",
"output_mb"}; the server answers {"pid"} once the child is forked and {"returncode"} when it ends
(negative: killed by that signal).
"""

from __future__ import annotations

import functools
import json
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO, Any

from labkit.core.leftovers import die_with_parent

#: What the server imports before it forks: what every graded run would import anyway.
WARM_MODULES = ("torch", "torch.nn", "torch.nn.functional", "numpy", "pytest", "pytest_timeout")


def _child(request: Mapping[str, Any], server: int) -> None:
    """In the forked child: become the run, then leave with pytest's exit status."""
    os.setsid()  # its own session, so that the client can kill it and anything it starts
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # the server ignores Ctrl-C (its client decides); the run does not
    die_with_parent(server)  # and it ends with the server, which ends with its client
    for limit, key in ((resource.RLIMIT_AS, "memory_mb"), (resource.RLIMIT_FSIZE, "output_mb")):
        if request.get(key) is not None:
            size = int(request[key]) * 2**20
            resource.setrlimit(limit, (size, size))
    out = os.open(request["output"], os.O_WRONLY | os.O_APPEND)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[:0] = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.argv = list(request["command"])
    code = 3
    try:
        import pytest

        code = int(pytest.main(list(request["command"][3:])))  # after [python, -m, pytest]
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(requests: IO[str], answers: IO[str]) -> None:
    """Fork one child per request, answer its pid, then its return code; until requests end.

    A Ctrl-C at the terminal reaches the server too (it is in its client's process group): the
    client decides what a Ctrl-C stops, so the server ignores it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in WARM_MODULES:
        __import__(name)
    server = os.getpid()
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request, server)
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()
        _, status = os.waitpid(pid, 0)
        answers.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        answers.flush()


class ForkServer:
    """A client's handle on one server process; one run at a time (one server per thread)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "labkit.core.forkserver"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, bufsize=1, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )  # fmt: skip

    def start(self, command: Sequence[str], *, cwd: str, env: Mapping[str, str], output: str,
              memory_mb: int | None, output_mb: int | None) -> int:  # fmt: skip
        """Fork a child for this run; its pid (it leads its own session)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"command": list(command), "cwd": cwd, "env": dict(env), "output": output,
                   "memory_mb": memory_mb, "output_mb": output_mb}  # fmt: skip
        self.proc.stdin.write(json.dumps(request) + "\n")
        return int(json.loads(self.proc.stdout.readline())["pid"])

    def wait(self) -> int:
        """The child's return code, once it has ended (negative: the signal that killed it); blocks."""
        assert self.proc.stdout is not None
        return int(json.loads(self.proc.stdout.readline())["returncode"])

_servers = threading.local()


def server() -> ForkServer:
    """This thread's fork server, started on first use (and ended with the client process)."""
    if getattr(_servers, "server", None) is None or _servers.server.proc.poll() is not None:
        _servers.server = ForkServer()
    return _servers.server  # type: ignore[no-any-return]


if __name__ == "__main__":
    # The protocol runs over copies of stdin and stdout; anything the server prints goes to stderr.
    channel_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    channel_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    serve(channel_in, channel_out)
