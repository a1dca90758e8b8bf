"""Exception classes: each bad call raises an exception of the class torch.nn raises for it (observed by running
torch.nn here, not assumed), and rnnkit's message names the argument and its value.

The classes (``rnnkit.validation``) also keep rnnkit's earlier ones (ValueError for shapes, TypeError for a
state's dtype), so ``except`` clauses written for either keep working.
"""

import re

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_sequence

import rnnkit

BACKENDS = ["reference", "native", "fused", "auto"]
D, H = 3, 5


def raised(call):
    try:
        call()
    except Exception as err:  # noqa: BLE001 - the point is which class
        return err
    return None


def assert_like_torch(torch_call, rnnkit_call, pattern):
    theirs, ours = raised(torch_call), raised(rnnkit_call)
    assert theirs is not None, "torch.nn accepts this call: the case is wrong"
    assert ours is not None, f"rnnkit accepts what torch.nn refuses with {theirs!r}"
    assert isinstance(ours, type(theirs)), f"torch.nn raises {type(theirs).__name__}, rnnkit {type(ours).__mro__}"
    assert re.search(pattern, str(ours)), str(ours)


# (name, constructor arguments, call builder(module) -> thunk, rnnkit message pattern)
def _x(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype)


LAYER_CALLS = {
    "input features": (lambda m: lambda: m(_x(4, 2, D + 1)), r"input has 4 features but input_size=3"),
    "unbatched features": (lambda m: lambda: m(_x(4, D + 1)), r"input has 4 features but input_size=3"),
    "zero steps": (lambda m: lambda: m(_x(0, 2, D)), r"input has zero time steps"),
    "zero steps unbatched": (lambda m: lambda: m(_x(0, D)), r"input has zero time steps"),
    "input rank": (lambda m: lambda: m(_x(2, 2, 2, D)), r"input must be 3-D .* got shape \(2, 2, 2, 3\)"),
    "input dtype": (lambda m: lambda: m(_x(4, 2, D, dtype=torch.float64)),
                    r"input has dtype torch.float64 but the weights have torch.float32"),
    "integer input": (lambda m: lambda: m(torch.ones(4, 2, D, dtype=torch.int64)),
                      r"got dtype torch.int64 \(the weights are torch.float32\)"),
    "packed dtype": (lambda m: lambda: m(pack_sequence([_x(3, D, dtype=torch.float64)])),
                     r"input has dtype torch.float64 but the weights have torch.float32"),
}


def _state(m, shape):
    h = torch.zeros(*shape)
    return (h, torch.zeros(1, 2, H)) if isinstance(m, nn.LSTM | rnnkit.LSTM) else h


EXPECT = r"must have shape \(1, 2, 5\), got "
STATE_CALLS = {
    "state batch": (lambda m: lambda: m(_x(4, 2, D), _state(m, (1, 3, H))), EXPECT + r"\(1, 3, 5\)"),
    "state size": (lambda m: lambda: m(_x(4, 2, D), _state(m, (1, 2, H + 1))), EXPECT + r"\(1, 2, 6\)"),
    "state rank": (lambda m: lambda: m(_x(4, 2, D), _state(m, (2, H))), EXPECT + r"\(2, 5\)"),
    "packed state batch": (lambda m: lambda: m(pack_sequence([_x(3, D), _x(2, D)]), _state(m, (1, 3, H))),
                           EXPECT + r"\(1, 3, 5\)"),
}

LAYERS = {"RNN": (nn.RNN, rnnkit.RNN), "LSTM": (nn.LSTM, rnnkit.LSTM), "GRU": (nn.GRU, rnnkit.GRU)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("case", [*LAYER_CALLS, *STATE_CALLS])
def test_layer_call_errors(case, kind, backend):
    build, pattern = {**LAYER_CALLS, **STATE_CALLS}[case]
    torch_cls, ours_cls = LAYERS[kind]
    assert_like_torch(build(torch_cls(D, H)), build(ours_cls(D, H, backend=backend)), pattern)


@pytest.mark.parametrize("kind", LAYERS)
def test_state_dtype_is_a_runtime_error_as_in_torch_and_a_type_error_as_before(kind):
    torch_cls, ours_cls = LAYERS[kind]
    h = torch.zeros(1, 2, H, dtype=torch.float64)
    hx = (h, torch.zeros(1, 2, H)) if kind == "LSTM" else h
    assert_like_torch(lambda: torch_cls(D, H)(_x(4, 2, D), hx), lambda: ours_cls(D, H)(_x(4, 2, D), hx),
                      r"(h_0|hx) has dtype torch.float64 but the input has torch.float32")
    assert isinstance(raised(lambda: ours_cls(D, H)(_x(4, 2, D), hx)), TypeError)


CONSTRUCTOR_CASES = {
    "float input_size": ((3.0, H), {}, "input_size must be a positive integer, got 3.0"),
    "float hidden_size": ((D, 5.0), {}, "hidden_size must be a positive integer, got 5.0"),
    "float num_layers": ((D, H, 1.5), {}, "num_layers must be a positive integer, got 1.5"),
    "zero input_size": ((0, H), {}, "input_size must be a positive integer, got 0"),
    "zero hidden_size": ((D, 0), {}, "hidden_size must be a positive integer, got 0"),
    "zero num_layers": ((D, H, 0), {}, "num_layers must be a positive integer, got 0"),
    "dropout above 1": ((D, H, 2), {"dropout": 1.5}, r"dropout must be a number in \[0, 1\], got 1.5"),
    "dropout bool": ((D, H, 2), {"dropout": True}, r"dropout must be a number in \[0, 1\], got True"),
    "bias not bool": ((D, H), {"bias": 1}, "bias must be a bool, got 1"),
    "batch_first not bool": ((D, H), {"batch_first": 1}, "batch_first must be a bool, got 1"),
}


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("case", CONSTRUCTOR_CASES)
def test_constructor_errors(case, kind):
    args, kwargs, pattern = CONSTRUCTOR_CASES[case]
    torch_cls, ours_cls = LAYERS[kind]
    assert_like_torch(lambda: torch_cls(*args, **kwargs), lambda: ours_cls(*args, **kwargs), pattern)


CELLS = {"RNNCell": (nn.RNNCell, rnnkit.RNNCell), "LSTMCell": (nn.LSTMCell, rnnkit.LSTMCell),
         "GRUCell": (nn.GRUCell, rnnkit.GRUCell)}


def _cell_state(c, shape, dtype=torch.float32):
    h = torch.zeros(*shape, dtype=dtype)
    return (h, h) if isinstance(c, nn.LSTMCell | rnnkit.LSTMCell) else h


CELL_CASES = {
    "input features": (lambda c: lambda: c(_x(2, D + 1)), "input has 4 features but input_size=3"),
    "input rank": (lambda c: lambda: c(_x(1, 2, D)), r"input must be \(B, D\) or \(D,\), got shape \(1, 2, 3\)"),
    "state size": (lambda c: lambda: c(_x(2, D), _cell_state(c, (2, H + 1))), r"shape \(2, 5\), got \(2, 6\)"),
    "state batch": (lambda c: lambda: c(_x(2, D), _cell_state(c, (3, H))), r"must have shape \(2, 5\), got \(3, 5\)"),
    "state rank": (lambda c: lambda: c(_x(2, D), _cell_state(c, (1, 2, H))), r"state must be \(B, H\) or \(H,\)"),
    "input dtype": (lambda c: lambda: c(_x(2, D, dtype=torch.float64)),
                    "input has dtype torch.float64 but the cell's weights have torch.float32"),
    "state dtype": (lambda c: lambda: c(_x(2, D), _cell_state(c, (2, H), torch.float64)),
                    "state has dtype torch.float64 but the input has torch.float32"),
    "float hidden_size": (None, "hidden_size must be an integer >= 0, got 5.0"),
    "float input_size": (None, "input_size must be an integer >= 0, got 3.0"),
}


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("case", CELL_CASES)
def test_cell_errors(case, kind):
    build, pattern = CELL_CASES[case]
    torch_cls, ours_cls = CELLS[kind]
    if case == "float hidden_size":
        assert_like_torch(lambda: torch_cls(D, 5.0), lambda: ours_cls(D, 5.0), pattern)
    elif case == "float input_size":
        assert_like_torch(lambda: torch_cls(3.0, H), lambda: ours_cls(3.0, H), pattern)
    else:
        assert_like_torch(build(torch_cls(D, H)), build(ours_cls(D, H)), pattern)


def test_shape_errors_are_still_value_errors():
    """Code written for rnnkit's earlier classes keeps catching them."""
    from rnnkit.validation import ArgumentTypeError, DtypeMismatchError, ShapeError

    assert issubclass(ShapeError, RuntimeError) and issubclass(ShapeError, ValueError)
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)
    assert all(issubclass(DtypeMismatchError, c) for c in (ValueError, TypeError, RuntimeError))
    with pytest.raises(ValueError, match="input has 4 features"):
        rnnkit.GRU(D, H)(_x(4, 2, D + 1))
