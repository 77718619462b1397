"""Fixtures shared by every test of the workbook.

Every test that draws random numbers asks for the `seed` fixture: it seeds Python, NumPy and torch
before the test builds anything, so lora_A starts the same on every run. Seeding is the tests' job;
the code in lora.py never seeds anything.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

# The graded tests use tiny tensors, where torch's worker threads cost more than they save (and on
# a busy machine they fight for the cores): one thread keeps a plain `pytest` close to the time
# of importing torch.
torch.set_num_threads(1)

#: The public seed. Graders may run with another one (MINITUNER_SEED) to catch answers that only
#: work for this value, so never rely on the exact numbers it produces.
DEFAULT_SEED = 0


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
