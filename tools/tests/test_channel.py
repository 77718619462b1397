"""The judge's channel to its worker (labkit.core.channel) and the worker's confinement (sandbox, seccomp).

What a worker sends is read as plain data or refused: never an object, never code run on reading.
A sandboxed worker can write nothing anywhere and start no process, only threads.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from labkit.core.channel import (
    MAX_FRAME,
    ChannelClosed,
    ChannelError,
    ChannelTimeout,
    decode,
    encode,
    receive,
    send,
)
from labkit.core.sandbox import sandboxed
from labkit.core.seccomp import program, program_fd


def test_plain_data_round_trips() -> None:
    tree = {"out": torch.arange(6.0).reshape(3, 2).T, "names": ["lora_A", "lora_B"], "shape": (2, 3),
            "flags": {"x": True, "n": 3, "f": 0.5, "none": None}, "array": np.eye(2)}  # fmt: skip
    back = decode(encode(tree))
    assert torch.equal(back["out"], tree["out"]) and type(back["out"]) is torch.Tensor
    assert back["names"] == tree["names"] and back["shape"] == (2, 3) and back["flags"] == tree["flags"]
    assert type(back["array"]) is np.ndarray and np.array_equal(back["array"], np.eye(2))


class _Runs:
    """An object whose unpickling would run code (os.system): the codec must refuse it unrun."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _saved(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def test_what_is_not_plain_data_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(ChannelError, match="unreadable"):
        decode(pickle.dumps({"observed": _Runs(marker)}))
    with pytest.raises(ChannelError, match="unreadable"):
        decode(_saved({"observed": _Runs(marker)}))
    assert not marker.exists(), "decoding ran the payload's code"
    refused = {
        "a Parameter": {"p": torch.nn.Parameter(torch.zeros(2))},
        "a grad-tracking tensor": {"t": torch.zeros(2, requires_grad=True)},
        "a dict with an int key": {1: 2},
        "a torch.Size": {"s": torch.Size([2])},
        "a dtype": {"d": torch.float32},
        "a zero-stride view": {"t": torch.zeros(3).expand(10**9, 3)},
        "a strided view": {"t": torch.zeros(4, 4)[:, ::2]},
    }
    for what, value in refused.items():
        with pytest.raises(ChannelError):
            decode(_saved(value))
            pytest.fail(f"{what} was accepted")
    deep: dict[str, object] = {}
    for _ in range(40):
        deep = {"d": deep}
    with pytest.raises(ChannelError, match="deeper"):
        decode(_saved(deep))


def test_frames_over_pipes_time_out_close_and_are_bounded() -> None:
    read_fd, write_fd = os.pipe()
    try:
        send(write_fd, {"a": torch.ones(3)})
        assert torch.equal(receive(read_fd, time.monotonic() + 5)["a"], torch.ones(3))
        start = time.monotonic()
        with pytest.raises(ChannelTimeout):
            receive(read_fd, time.monotonic() + 0.3)
        assert time.monotonic() - start < 2
        os.write(write_fd, (MAX_FRAME + 1).to_bytes(4, "big"))
        with pytest.raises(ChannelError, match="announced"):
            receive(read_fd, time.monotonic() + 5)
    finally:
        os.close(write_fd)
    with pytest.raises(ChannelClosed):
        receive(read_fd, time.monotonic() + 5)
    os.close(read_fd)


PROBE = """
import os, threading
results = []
for path in ("/tmp/x", "/dev/shm/x", "/dev/x", os.getcwd() + "/x"):
    try:
        open(path, "wb").write(b"1")
        results.append("wrote " + path)
    except OSError:
        pass
try:
    if os.fork() == 0:
        os._exit(0)
    results.append("forked")
except OSError:
    pass
threading.Thread(target=lambda: results.append("thread")).start()
print(results)
"""


def test_a_sandboxed_worker_writes_nothing_and_starts_only_threads(tmp_path: Path) -> None:
    assert program("x86_64") and program("aarch64") and program("riscv128") is None
    fd = program_fd()
    if fd is None:
        pytest.fail("no seccomp filter for this machine: the worker could start processes")
    (tmp_path / "probe.py").write_text(PROBE, encoding="utf-8")
    command = sandboxed([sys.executable, "probe.py"], workdir=tmp_path, read_only=True, seccomp_fd=fd)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60, pass_fds=(fd,), check=False)
    finally:
        os.close(fd)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['thread']", proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probe.py"]
