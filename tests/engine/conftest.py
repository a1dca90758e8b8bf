"""Shared helpers for the engine tests: run a layer on a named back end and collect every result."""

from __future__ import annotations

import pytest
import torch

import rnnkit

KINDS = {
    "rnn_tanh": (rnnkit.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnnkit.RNN, {"nonlinearity": "relu"}),
    "gru": (rnnkit.GRU, {}),
    "lstm": (rnnkit.LSTM, {}),
}


def _threads(count: int):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def two_threads():
    """torch runs 2 threads for the test (the fused kernels split rows or units across them)."""
    yield from _threads(2)


@pytest.fixture
def three_threads():
    yield from _threads(3)


def make_layer(kind: str, input_size=4, hidden=5, layers=1, bidirectional=False, bias=True, **options):
    cls, base = KINDS[kind]
    torch.manual_seed(0)
    layer = cls(input_size, hidden, layers, bias=bias, bidirectional=bidirectional, **base, **options)
    return layer.double()


def run_all(layer, backend: str, x, hx=None, lengths=None, seed: int = 123):
    """Outputs, final states and the gradients of a loss touching all of them, on ``backend``."""
    layer.backend = backend
    x = x.detach().clone().requires_grad_(True)
    if hx is not None:
        hx = tuple(h.detach().clone().requires_grad_(True) for h in hx)
        hx_arg = hx[0] if len(hx) == 1 else hx
    else:
        hx_arg = None
    torch.manual_seed(seed)
    out, states = layer(x, hx_arg, lengths=lengths)
    states = states if isinstance(states, tuple) else (states,)
    # Weighted sums so every element's gradient differs (a plain sum hides transposed indices).
    loss = (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum()
    loss = loss + sum((s.sin() * (i + 2)).sum() for i, s in enumerate(states))
    inputs = [x, *(hx or ()), *layer.parameters()]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return [out, *states, *grads]


def assert_same(a: list, b: list, atol=1e-10, rtol=1e-8):
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b, strict=True)):
        if u is None or v is None:
            assert u is None and v is None or (u if v is None else v).abs().max() == 0, f"item {i}"
            continue
        torch.testing.assert_close(u, v, atol=atol, rtol=rtol, msg=lambda m, i=i: f"item {i}: {m}")


@pytest.fixture(autouse=True)
def _fused_available():
    from rnnkit.engine.fused.build import failure

    reason = failure()
    if reason is not None and "RNNKIT_FUSED=0" not in reason:
        pytest.fail(f"the fused kernels did not build: {reason}")
