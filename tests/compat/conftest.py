"""Shared pieces of the torch.nn compatibility tests: the layers on every back end, tiny sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rnnkit

BACKENDS = ["reference", "native", "fused", "auto"]
LAYERS = {"rnn": (rnnkit.RNN, nn.RNN), "lstm": (rnnkit.LSTM, nn.LSTM), "gru": (rnnkit.GRU, nn.GRU)}
D, H, T, B = 3, 4, 3, 2  # input size, hidden size, steps, batch: compile and gradgradcheck stay quick


def make(kind: str, backend: str, dtype=torch.float32, **kwargs):
    """``(rnnkit layer, torch.nn layer)`` with the same weights, in ``dtype``."""
    ours_cls, theirs_cls = LAYERS[kind]
    torch.manual_seed(0)
    ours = ours_cls(D, H, backend=backend, **kwargs).to(dtype)
    theirs = theirs_cls(D, H, **kwargs).to(dtype)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


@pytest.fixture(autouse=True)
def _fused_available():
    from rnnkit.engine.fused.build import failure

    reason = failure()
    if reason is not None and "RNNKIT_FUSED=0" not in reason:
        pytest.fail(f"the fused kernels did not build: {reason}")
