import random

import numpy as np
import pytest
import torch

from rnnkit.training import make_generator, seed_everything


def _draw():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seed_everything_repeats_all_generators():
    seed_everything(7)
    first = _draw()
    seed_everything(7)
    assert _draw() == first
    seed_everything(8)
    assert _draw() != first


def test_make_generator_is_independent_of_global_state():
    a = torch.randperm(10, generator=make_generator(3))
    torch.rand(100)  # consuming the global generator must not shift the private one
    b = torch.randperm(10, generator=make_generator(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_invalid_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(seed)
