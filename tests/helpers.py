"""Shared helpers: rnnkit layers beside torch.nn ones, and a tiny language model with a text to read."""

from __future__ import annotations

import torch
from torch import nn

import rnnkit
from rnnkit.models.config import LanguageModelConfig
from rnnkit.models.language_model import RNNLanguageModel

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


SONNET = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n" * 30


def tiny_lm_net(cell="lstm", vocab_size=30):
    """A seeded two-layer float64 language model in eval mode, small enough for exact comparisons."""
    torch.manual_seed(0)
    return RNNLanguageModel(LanguageModelConfig(cell=cell, embedding_dim=8, hidden_size=12, num_layers=2, dropout=0.0),
                            vocab_size).double().eval()
