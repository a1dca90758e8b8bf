"""Cells on their own: torch.nn's cells, gradcheck, and golden values from hand arithmetic."""

import math

import pytest
import torch
from torch import nn

import rnnkit

D, H, B = 3, 4, 2
CELLS = {
    "rnn_tanh": (lambda: rnnkit.RNNCell(D, H, nonlinearity="tanh"), lambda: nn.RNNCell(D, H, nonlinearity="tanh")),
    "rnn_relu": (lambda: rnnkit.RNNCell(D, H, nonlinearity="relu"), lambda: nn.RNNCell(D, H, nonlinearity="relu")),
    "lstm": (lambda: rnnkit.LSTMCell(D, H), lambda: nn.LSTMCell(D, H)),
    "gru": (lambda: rnnkit.GRUCell(D, H), lambda: nn.GRUCell(D, H)),
}


@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch_nn_cell(kind, bias):
    ours, theirs = CELLS[kind][0](), CELLS[kind][1]()
    if not bias:
        ours = type(ours)(D, H, bias=False, **({"nonlinearity": ours.nonlinearity} if "rnn" in kind else {}))
        theirs = type(theirs)(D, H, bias=False, **({"nonlinearity": theirs.nonlinearity} if "rnn" in kind else {}))
    ours.double()
    theirs.double().load_state_dict(ours.state_dict())
    x = torch.randn(B, D, dtype=torch.float64)
    state = torch.randn(B, H, dtype=torch.float64)
    hx = (state, torch.randn(B, H, dtype=torch.float64)) if kind == "lstm" else state
    a, b = ours(x, hx), theirs(x, hx)
    for u, v in zip(a if kind == "lstm" else (a,), b if kind == "lstm" else (b,), strict=True):
        torch.testing.assert_close(u, v, atol=1e-12, rtol=0)
    # Unbatched (D,) input as torch.nn allows.
    a1 = ours(x[0])
    b1 = theirs(x[0])
    torch.testing.assert_close(a1[0] if kind == "lstm" else a1, b1[0] if kind == "lstm" else b1)


@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_gradcheck(kind):
    cell = CELLS[kind][0]().double()
    x = torch.randn(B, D, dtype=torch.float64, requires_grad=True)
    h = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    params = cell.own_params()
    names = list(params)
    if kind == "lstm":
        c = torch.randn(B, H, dtype=torch.float64, requires_grad=True)

        def fn(x, h, c, *ps):
            out, (h2, c2) = cell.step(x, (h, c), dict(zip(names, ps, strict=True)))
            return out, c2

        assert torch.autograd.gradcheck(fn, (x, h, c, *params.values()))
    else:
        def fn(x, h, *ps):
            return cell.step(x, (h,), dict(zip(names, ps, strict=True)))[0]

        assert torch.autograd.gradcheck(fn, (x, h, *params.values()))


def _constant(cell, value):
    with torch.no_grad():
        for p in cell.parameters():
            p.fill_(value)
    return cell


def test_golden_rnn_cell():
    # S_1 = tanh(W·X + H·S_0 + b): every weight 0.1, X = (1, 2, 3), S_0 = 0.5 everywhere, both biases 0.1.
    cell = _constant(rnnkit.RNNCell(3, 2).double(), 0.1)
    h = cell(torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64), torch.full((1, 2), 0.5, dtype=torch.float64))
    expected = math.tanh(0.1 * 6 + 0.1 * 0.5 * 2 + 0.2)
    assert h[0].tolist() == pytest.approx([expected, expected], abs=1e-15)
    relu = _constant(rnnkit.RNNCell(3, 2, nonlinearity="relu").double(), -0.1)
    assert relu(torch.ones(1, 3, dtype=torch.float64)).tolist() == [[0.0, 0.0]]


def test_golden_lstm_cell():
    # Every weight 0.5, biases 0; x = (1, 1, 1), h_0 = 0, c_0 = 1. Every gate sees z = 1.5.
    cell = _constant(rnnkit.LSTMCell(3, 2).double(), 0.5)
    with torch.no_grad():
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
    h, c = cell(torch.ones(1, 3, dtype=torch.float64),
                (torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)))
    s = 1 / (1 + math.exp(-1.5))
    c_expected = s * 1.0 + s * math.tanh(1.5)
    assert c[0].tolist() == pytest.approx([c_expected] * 2, abs=1e-15)
    assert h[0].tolist() == pytest.approx([s * math.tanh(c_expected)] * 2, abs=1e-15)


def test_golden_gru_cell():
    # Every weight 0.25, every bias 0.1; x = (2, 2), h_0 = 1.
    cell = _constant(rnnkit.GRUCell(2, 1).double(), 0.25)
    with torch.no_grad():
        cell.bias_ih.fill_(0.1)
        cell.bias_hh.fill_(0.1)
    h = cell(torch.full((1, 2), 2.0, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64))
    gate = 1 / (1 + math.exp(-(0.25 * 4 + 0.1 + 0.25 * 1 + 0.1)))  # r and z alike
    n = math.tanh(0.25 * 4 + 0.1 + gate * (0.25 * 1 + 0.1))
    assert h.item() == pytest.approx((1 - gate) * n + gate * 1.0, abs=1e-15)


def test_cell_built_by_a_layer_has_no_weights():
    cell = rnnkit.LSTM(3, 4).cells[0]
    with pytest.raises(RuntimeError, match="own_parameters=False"):
        cell(torch.randn(2, 3))
