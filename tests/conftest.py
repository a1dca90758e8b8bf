import os

import pytest
import torch

# backend="auto" follows the static rules in tests: a timed choice would make them depend on the machine's load
# (tests/engine/test_autotune.py turns the tuner on with cache contents it controls).
os.environ.setdefault("RNNKIT_AUTOTUNE", "0")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
