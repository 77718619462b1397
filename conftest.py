"""Fixtures shared by every test of the workbook.

Every test that draws random numbers asks for the `seed` fixture: it seeds Python, NumPy and torch
before the test builds anything, so lora_A starts the same on every run. Seeding is the tests' job;
the code in lora.py never seeds anything.

The graded tests call your code only through the `observe` fixture: observe(scenario, **inputs)
runs one scenario of tests/scenarios.py on copies of the inputs and returns what it observed. In a
plain `pytest` that happens right here, in this process. When the instructor grades, the grader's
plugin (labkit.grading.judge) sends the same request to a sandboxed process that holds your code.

Messages are in your language (LANG=es_ES.UTF-8, or LANGUAGE=es: see minituner.i18n), the stubs'
NotImplementedError included.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import scenarios
from minituner.i18n import language, tr

# The graded tests use tiny tensors, where torch's worker threads cost more than they save (and on
# a busy machine they fight for the cores): one thread keeps a plain `pytest` close to the time
# of importing torch.
torch.set_num_threads(1)

#: The public seed. Graders may run with another one (MINITUNER_SEED) to catch answers that only
#: work for this value, so never rely on the exact numbers it produces.
DEFAULT_SEED = 0
#: The pytest plugin that, when loaded, runs the scenarios somewhere else (the grader's judge).
JUDGE_PLUGIN = "labkit.grading.judge"

Observe = Callable[..., dict[str, Any]]
_judged: list[bool] = []  # whether the judge's plugin is loaded, once pytest is configured


def pytest_configure(config: pytest.Config) -> None:
    _judged.append(config.pluginmanager.has_plugin(JUDGE_PLUGIN))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """A stub's NotImplementedError reported in the reader's language (its text is a catalog message)."""
    error = call.excinfo.value if call.excinfo is not None else None
    if type(error) is NotImplementedError and len(error.args) == 1 and isinstance(error.args[0], str):
        error.args = (tr(language(), error.args[0]),)  # a message of the catalog, though not a literal here
    return (yield)


def judged() -> bool:
    """Whether this run's scenarios go to the grader's judge (then this process never imports lora.py)."""
    return bool(_judged) and _judged[-1]


@pytest.fixture
def seed() -> int:
    """Seed random, numpy and torch with MINITUNER_SEED (default 0) and return the seed."""
    value = int(os.environ.get("MINITUNER_SEED", DEFAULT_SEED))
    random.seed(value)
    np.random.seed(value)
    # The CPU generator, which is all the tests use: torch.manual_seed would also queue a seed for
    # every accelerator backend, recording a stack trace each time (~3 ms a test).
    torch.random.default_generator.manual_seed(value)
    return value


@pytest.fixture
def rng(seed: int) -> np.random.Generator:
    """A NumPy generator derived from the seed, for random shapes and values."""
    return np.random.default_rng(seed)


@pytest.fixture
def observe(request: pytest.FixtureRequest, seed: int) -> Observe:
    """observe(scenario, **inputs) -> what the scenario observed (a dict of plain data).

    Each call seeds the scenario's random numbers (lora_A's initialization, dropout) with a value
    derived from the seed, the test and the call's rank, so a run is reproducible.
    """
    judge = request.config.pluginmanager.get_plugin(JUDGE_PLUGIN)
    calls = itertools.count()

    def observe(scenario: scenarios.Scenario, **inputs: Any) -> dict[str, Any]:
        digest = hashlib.sha256(f"{seed}:{request.node.nodeid}:{next(calls)}".encode()).digest()
        call_seed = int.from_bytes(digest[:6], "big")
        if judge is not None:
            observed: dict[str, Any] = judge.observe(request, scenario.__name__, inputs, call_seed)
            return observed
        return scenarios.run(scenario.__name__, inputs, call_seed)

    return observe
