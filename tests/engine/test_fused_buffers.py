"""The fused kernels keep the gate activations over the input projection and reuse backward's δa scratch:
neither may leak between graphs, between backward passes, or between calls."""

from __future__ import annotations

import pytest
import torch

from rnnkit.engine.fused import recurrence

from .conftest import KINDS, make_layer


@pytest.fixture(autouse=True)
def pooled(monkeypatch):
    """Every projection through the pool, however small (the tests' tensors are tiny)."""
    monkeypatch.setattr(recurrence, "POOLED_BYTES", 0)


def _grads(layer, x, lengths, weight):
    return torch.autograd.grad((layer(x, lengths=lengths)[0] * weight).sum(), [x, *layer.parameters()])


CASES = [(kind, {}) for kind in KINDS] + [("lstm", {"layer_norm": True}), ("gru", {"layer_norm": True}),
                                          ("rnn_tanh", {"zoneout": 0.3})]


@pytest.mark.parametrize("kind,options", CASES)
@pytest.mark.parametrize("lengths", [None, [7, 3, 5, 1]])
def test_interleaved_graphs_and_retained_backward(kind, options, lengths):
    """Two graphs alive at once, backward in the opposite order, the first one twice (retain_graph)."""
    layer = make_layer(kind, layers=2, bidirectional=True, **options).eval()  # eval: zoneout deterministic
    lengths = None if lengths is None else torch.tensor(lengths)
    torch.manual_seed(3)
    xa, xb = (torch.randn(7, 4, 4, dtype=torch.float64, requires_grad=True) for _ in range(2))
    wa, wb = torch.randn(7, 4, 10, dtype=torch.float64), torch.randn(7, 4, 10, dtype=torch.float64)
    layer.backend = "reference"
    expect_a, expect_b = _grads(layer, xa, lengths, wa), _grads(layer, xb, lengths, wb)

    layer.backend = "fused"
    params = [xa, *layer.parameters()]
    loss_a = (layer(xa, lengths=lengths)[0] * wa).sum()
    loss_b = (layer(xb, lengths=lengths)[0] * wb).sum()
    got_b = torch.autograd.grad(loss_b, [xb, *layer.parameters()])
    first_a = torch.autograd.grad(loss_a, params, retain_graph=True)
    second_a = torch.autograd.grad(loss_a, params)
    for got, expect in ((got_b, expect_b), (first_a, expect_a), (second_a, expect_a)):
        for g, e in zip(got, expect, strict=True):
            torch.testing.assert_close(g, e, atol=1e-10, rtol=1e-8)


def test_scratch_from_a_longer_call_is_not_read_by_a_shorter_padded_one():
    """A large unpadded backward leaves garbage in the kept δa buffer; a smaller padded one must clear it."""
    layer = make_layer("gru")
    layer.backend = "fused"
    torch.manual_seed(4)
    big = torch.randn(30, 9, 4, dtype=torch.float64, requires_grad=True)
    (layer(big)[0] * 1e6).sum().backward()
    layer.zero_grad()
    x = torch.randn(6, 3, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    fused = _grads(layer, x, lengths, 1.0)
    layer.backend = "reference"
    for g, e in zip(fused, _grads(layer, x, lengths, 1.0), strict=True):
        torch.testing.assert_close(g, e, atol=1e-10, rtol=1e-8)


def test_pool_hands_out_the_smallest_fitting_buffer_and_keeps_a_bounded_number():
    from rnnkit.engine.fused.buffers import BufferPool

    pool = BufferPool(keep=2)
    a, b = pool.take(10, torch.float32), pool.take(30, torch.float32)
    assert pool.take(5, torch.float64).dtype == torch.float64
    pool.give(b)
    pool.give(a)
    assert pool.take(8, torch.float32) is a  # the smallest that fits, found by identity (not ==)
    assert pool.take(8, torch.float64).numel() == 8  # another dtype: a new one
    pool.give(a)
    pool.give(torch.empty(50))
    assert len(pool) == 2  # the smallest (a) was dropped
    assert pool.take(11, torch.float32) is b


def test_pool_gets_a_buffer_back_only_when_its_holder_is_gone():
    from rnnkit.engine.fused.buffers import BufferPool

    class Holder:
        pass

    pool, holder, buffer = BufferPool(), Holder(), torch.empty(4)
    pool.give_when_gone(holder, buffer)
    assert len(pool) == 0
    del holder
    assert len(pool) == 1 and pool.take(4, torch.float32) is buffer


def test_training_calls_return_their_projection_buffers_with_the_graph():
    from rnnkit.engine.fused.buffers import projections

    layer = make_layer("lstm", layers=2)
    layer.backend = "fused"
    x = torch.randn(5, 2, 4, dtype=torch.float64, requires_grad=True)
    before = len(projections)
    out = layer(x)[0]
    out.sum().backward()
    del out
    # Both layers' buffers are back (or the pool was already at its bound).
    assert len(projections) == min(projections.keep, max(before, 2))
