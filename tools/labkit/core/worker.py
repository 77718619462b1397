"""The worker: the one process that imports a submission, inside the sandbox, and runs scenarios for the judge.

    python -m labkit.core.worker        (cwd: a copy holding src/minituner and tests/scenarios.py)

It reads requests from stdin and answers on stdout, one frame each (labkit.core.channel); both are
moved to private descriptors first, so that what the submission prints goes to stderr and never into
the channel. The first frame it sends says whether the submission imported. Then, for each request
{"scenario", "inputs", "seed"}, it runs scenarios.run and answers {"observed": tree}, or, when the
scenario raised, {"raised": {"type", "message"}}. Whatever it sends is data for the judge to check:
the worker decides nothing, and nothing it sends can be a verdict.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any

MAX_MESSAGE = 4000  # characters of an exception's message sent back


def _channel() -> tuple[int, int]:
    """(read fd, write fd) of the channel; stdin becomes /dev/null and stdout goes to stderr."""
    read_fd, write_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    return read_fd, write_fd


def import_problem(exc: BaseException) -> str:
    """Why the submission did not import, without the worker's own frames or paths."""
    if isinstance(exc, SyntaxError) and str(exc.filename or "").endswith("minituner/lora.py"):
        exc.filename = "src/minituner/lora.py"  # the student's path, not the worker's copy
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith("minituner/lora.py")]
    where = f"lora.py, line {frames[-1].lineno}: {frames[-1].line}\n" if frames else ""
    return (where + "".join(traceback.format_exception_only(type(exc), exc)).strip())[:MAX_MESSAGE]


def main() -> None:
    read_fd, write_fd = _channel()
    import torch

    from labkit.core.channel import ChannelClosed, receive, send
    from labkit.core.overlay import import_file

    torch.set_num_threads(1)  # the judge's own computations run on one thread: the same kernels
    # The scenarios are kept out of sys.modules, so that the submission does not find them by name
    # (the code rule flags the ways around; the judge trusts what comes back only as data anyway).
    scenarios = import_file(Path("tests/scenarios.py"), "labkit_worker_scenarios")

    try:
        import minituner.lora  # noqa: F401 - the submission, imported once, here only
    except BaseException as exc:  # whatever it raised is the problem to report
        send(write_fd, {"import_error": import_problem(exc)})
        return
    send(write_fd, {"ready": True})
    while True:
        try:
            request = receive(read_fd)
        except ChannelClosed:
            return
        reply: dict[str, Any]
        try:
            reply = {"observed": scenarios.run(request["scenario"], request["inputs"], request["seed"])}
        except BaseException as exc:  # the scenario's exception is the observation
            reply = {"raised": {"type": type(exc).__name__, "message": str(exc)[:MAX_MESSAGE]}}
        try:
            send(write_fd, reply)
        except Exception as exc:  # an observation the codec refuses
            send(write_fd, {"raised": {"type": "ObservationError", "message": str(exc)[:MAX_MESSAGE]}})


if __name__ == "__main__":
    main()
