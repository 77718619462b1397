"""Timing on a shared, noisy machine: interleaved rounds, medians with quartiles, and the machine.

Every benchmark of the workbook (labkit.bench, labkit.bench.speed) measures through here. Candidates are
timed in interleaved rounds (each round runs every candidate once, in a rotating order), so a burst
of load from another process slows all of them alike, and a ratio is taken within each round before
its median is reported.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Stat:
    """Median and quartiles of repeated measurements (seconds, or a ratio)."""

    median: float
    q1: float
    q3: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stat:
        if not samples:
            raise ValueError("samples must not be empty")
        if len(samples) == 1:
            return cls(samples[0], samples[0], samples[0], 1)
        q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
        return cls(median, q1, q3, len(samples))

    def to_json(self) -> dict[str, float]:
        return {"median": self.median, "q1": self.q1, "q3": self.q3, "n": self.n}

    @classmethod
    def from_json(cls, data: Mapping[str, float]) -> Stat:
        return cls(float(data["median"]), float(data["q1"]), float(data["q3"]), int(data["n"]))


def interleaved(
    candidates: Mapping[str, Callable[[], object]], *, rounds: int, warmup: int = 1, inner: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each candidate, one sample per round.

    Each sample is the mean of `inner` back-to-back calls (for calls too short to time alone);
    `warmup` untimed rounds come first (first-call allocations, caches, lazy initialization).
    """
    if rounds < 1 or warmup < 0 or inner < 1:
        raise ValueError(f"need rounds >= 1, warmup >= 0, inner >= 1; got {rounds}, {warmup}, {inner}")
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:  # rotate: no candidate always runs first
            fn = candidates[name]
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            elapsed = (time.perf_counter() - start) / inner
            if round_index >= warmup:
                samples[name].append(elapsed)
    return samples


def ratios(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    """Round-by-round ratios of two candidates timed by interleaved()."""
    return [a / b for a, b in zip(numerator, denominator, strict=True)]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    """What the figures were measured on: enough to tell two machines apart."""
    import torch

    return {
        "cpu": cpu_model(),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
        "date": datetime.date.today().isoformat(),
    }
