"""The judge's channel to a worker: length-prefixed frames over pipes, a codec that cannot run code.

A frame is 4 bytes of length (big-endian) and that many bytes of payload. A payload is a tree of
plain data (dict with str keys, list, tuple, str, int, float, bool, None, torch.Tensor and
np.ndarray) written with torch.save and read with torch.load(weights_only=True): the restricted
unpickler, which rebuilds tensors and containers and refuses every other object, so reading a
frame never runs code. What the worker sends is then checked field by field (decode): exact
types, sizes, depth; anything else is a ChannelError, which the judge counts against that
scenario and keeps as evidence. Arrays travel as a tagged tensor ({NDARRAY: tensor}).
"""

from __future__ import annotations

import io
import os
import select
import time
import warnings
from typing import Any

import numpy as np
import torch

MAX_FRAME = 64 * 2**20  # bytes of one frame
MAX_NODES = 100_000  # values in one tree
MAX_DEPTH = 16
MAX_STRING = 100_000  # characters of one string
NDARRAY = "__ndarray__"  # the tag of an array's tensor
_SCALARS = (str, int, float, bool, type(None))


class ChannelError(Exception):
    """A frame that breaks the protocol: too large, unreadable, or not plain data."""


class ChannelTimeout(ChannelError):
    """No whole frame came before the deadline."""


class ChannelClosed(ChannelError):
    """The other end closed the pipe (the worker ended)."""


def encode(tree: Any) -> bytes:
    """tree as one payload (arrays tagged as tensors)."""
    buffer = io.BytesIO()
    torch.save(_tag(tree), buffer)
    return buffer.getvalue()


def _tag(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.contiguous()  # what decode accepts: a transposed result is a fine observation
    if isinstance(value, np.ndarray):
        return {NDARRAY: torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, dict):
        return {k: _tag(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tag(v) for v in value)
    return value


def decode(payload: bytes) -> Any:
    """The tree a payload holds, once every value in it is plain data within bounds (else ChannelError)."""
    if len(payload) > MAX_FRAME:
        raise ChannelError(f"a frame of {len(payload)} bytes (at most {MAX_FRAME})")
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols it did not write itself
            warnings.simplefilter("ignore")
            tree = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as exc:  # whatever the unpickler refused
        raise ChannelError(f"an unreadable frame ({type(exc).__name__}: {str(exc)[:200]})") from None
    budget = [MAX_NODES]
    return _checked(tree, 0, budget)


def _checked(value: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        raise ChannelError(f"a tree deeper than {MAX_DEPTH} or with more than {MAX_NODES} values")
    kind = type(value)
    if kind in _SCALARS:
        if kind is str and len(value) > MAX_STRING:
            raise ChannelError(f"a string of {len(value)} characters (at most {MAX_STRING})")
        return value
    if kind is torch.Tensor:
        return _checked_tensor(value)
    if kind is dict:
        if set(value) == {NDARRAY}:
            tensor = value[NDARRAY]
            if type(tensor) is not torch.Tensor:
                raise ChannelError(f"an array tag around a {type(tensor).__name__}")
            return _checked_tensor(tensor).numpy()
        if not all(type(k) is str for k in value):
            raise ChannelError("a dict with a key that is not a str")
        return {k: _checked(v, depth + 1, budget) for k, v in value.items()}
    if kind in (list, tuple):
        return kind(_checked(v, depth + 1, budget) for v in value)
    raise ChannelError(f"a value of type {kind.__module__}.{kind.__qualname__}, which is not plain data")


def _checked_tensor(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.layout != torch.strided or tensor.device.type != "cpu" or tensor.is_quantized:
        raise ChannelError("a tensor that is not a dense CPU tensor")
    if tensor.requires_grad:
        raise ChannelError("a tensor that requires grad (observations are detached)")
    # A view with a zero stride (t.expand(...)) travels as a few bytes and is huge once computed with.
    if not tensor.is_contiguous() or tensor.numel() * tensor.element_size() > MAX_FRAME:
        raise ChannelError(f"a tensor of shape {tuple(tensor.shape)} that is not a contiguous one of at most "
                           f"{MAX_FRAME} bytes")  # fmt: skip
    return tensor


def send(fd: int, tree: Any) -> None:
    """Write tree as one frame to the file descriptor fd."""
    payload = encode(tree)
    if len(payload) > MAX_FRAME:
        raise ChannelError(f"a frame of {len(payload)} bytes (at most {MAX_FRAME})")
    data = len(payload).to_bytes(4, "big") + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def receive(fd: int, deadline: float | None = None) -> Any:
    """The next frame's tree from fd; waits until deadline (time.monotonic), None: forever."""
    header = _read_exactly(fd, 4, deadline)
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME:
        raise ChannelError(f"a frame of {size} bytes announced (at most {MAX_FRAME})")
    return decode(_read_exactly(fd, size, deadline))


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    missing = size
    while missing:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ChannelTimeout("no answer before the time limit")
        chunk = os.read(fd, min(missing, 2**20))
        if not chunk:
            raise ChannelClosed("the other end closed the channel")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
