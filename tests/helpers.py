"""Shared helpers for comparing rnnkit layers with torch.nn."""

from __future__ import annotations

from torch import nn

import rnnkit

KINDS = {
    "rnn_tanh": (lambda **kw: rnnkit.RNN(nonlinearity="tanh", **kw), lambda **kw: nn.RNN(nonlinearity="tanh", **kw)),
    "rnn_relu": (lambda **kw: rnnkit.RNN(nonlinearity="relu", **kw), lambda **kw: nn.RNN(nonlinearity="relu", **kw)),
    "lstm": (rnnkit.LSTM, nn.LSTM),
    "gru": (rnnkit.GRU, nn.GRU),
}


def make_pair(kind, backend="auto", **kwargs):
    """An rnnkit layer and a torch.nn layer with the same (copied) float64 weights."""
    ours_cls, theirs_cls = KINDS[kind]
    ours = ours_cls(backend=backend, **kwargs).double()
    theirs = theirs_cls(**kwargs).double()
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def grads(module, *tensors):
    named = {name: p.grad.clone() for name, p in module.named_parameters()}
    return named, [t.grad.clone() for t in tensors]
