"""The native back end: torch's own kernels (oneDNN on CPU, cuDNN on GPU).

It calls the functions ``torch.nn.LSTM``/``GRU``/``RNN`` call themselves (``torch.lstm``, ``torch.gru``,
``torch.rnn_tanh``, ``torch.rnn_relu``) with the layer's own parameters in torch's order: no weight is
copied, gradients land on the layer's parameters, and there is no module or reparametrisation in between
(``torch.func.functional_call`` on a twin module cost 5-15% at small sizes).

Variable lengths, exactly, without PackedSequence (torch runs packed input on its slow loop: 0.25× of
padded in training) and without computing a single pad step: each layer and direction sorts its rows by
length and calls the kernel once per run of steps between two consecutive distinct lengths, on the rows
still running there, carrying the state from one call to the next. Rows that end at a boundary hand over
their final state there. ``B`` sequences cost at most ``B`` kernel calls per layer and direction; the
reverse direction gets its input reversed within each length (see ``stack``), so it has the same lengths.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.engine.registry import register_backend
from rnnkit.engine.stack import run_stack

_KERNELS = {LSTMCell: torch.lstm, GRUCell: torch.gru}
_RNN_KERNELS = {"tanh": torch.rnn_tanh, "relu": torch.rnn_relu}
_ORDER = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # torch's flat-weight order per layer and direction


def _kernel(layer):
    if layer.cell_type is RNNCell:
        return _RNN_KERNELS[layer.cell_for(0, 0).nonlinearity]
    return _KERNELS[layer.cell_type]


def _direction_weights(layer, k: int, d: int) -> list[Tensor]:
    p = layer.params_for(k, d)
    return [p[name] for name in _ORDER if name in p]


def _flat_weights(layer, layers: range) -> list[Tensor]:
    return [w for k in layers for d in range(layer.num_directions) for w in _direction_weights(layer, k, d)]


def _call(layer, x: Tensor, state: tuple[Tensor, ...], weights: list[Tensor], num_layers: int, bidirectional: bool):
    """One torch kernel call on time-major x; state tuple of (L·D, B, H); returns (out, state tuple)."""
    kernel = _kernel(layer)
    dropout = layer.dropout if num_layers > 1 else 0.0
    args = (weights, layer.bias, num_layers, dropout, layer.training, bidirectional, False)
    if layer.cell_type is LSTMCell:
        out, h, c = kernel(x, state, *args)
        return out, (h, c)
    out, h = kernel(x, state[0], *args)
    return out, (h,)


def _zeros(layer, x: Tensor, count: int) -> tuple[Tensor, ...]:
    zeros = x.new_zeros(count, x.shape[1], layer.hidden_size)
    return tuple(zeros for _ in range(layer.cell_type.state_count))


def _segmented_direction(layer, k: int, d: int, x: Tensor, h0, lengths: Tensor, record=None):
    """One layer and direction over padded (T, B, F) input with ``lengths``; see the module docstring."""
    steps, batch = x.shape[0], x.shape[1]
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order].tolist()
    index = order.to(x.device)
    xs = x.index_select(1, index)
    state = _zeros(layer, x, 1) if h0 is None else tuple(s.index_select(0, index).unsqueeze(0) for s in h0)
    weights = _direction_weights(layer, k, d)
    pieces, finals = [], []
    start, live, running = 0, batch, batch
    for end in sorted(set(sorted_lengths)):
        out, state = _call(layer, xs[start:end, :live], tuple(s[:, :live] for s in state), weights, 1, False)
        pieces.append(F.pad(out, (0, 0, 0, batch - live)))
        while running > 0 and sorted_lengths[running - 1] <= end:  # rows sorted longest first
            running -= 1
        finals.append(tuple(s[0, running:live] for s in state))
        start, live = end, running
    out = torch.cat(pieces, 0)
    if start < steps:
        out = F.pad(out, (0, 0, 0, 0, 0, steps - start))
    inverse = torch.argsort(order).to(x.device)
    finals = tuple(torch.cat([f[i] for f in reversed(finals)], 0).index_select(0, inverse)
                   for i in range(layer.cell_type.state_count))
    return out.index_select(1, inverse), finals


class NativeBackend:
    name = "native"

    def unsupported(self, layer, x, lengths):
        if layer.cell_type not in (LSTMCell, GRUCell, RNNCell):
            return f"torch has no native kernel for {layer.cell_type.__name__}"
        extra = sorted(set(layer.cell_options) - {"nonlinearity"})
        if extra:
            return f"torch's kernels have no cell options {extra}"
        return None

    def run(self, layer, x: Tensor, hx, lengths):
        steps = x.shape[0]
        if lengths is not None and bool((lengths == steps).all()):
            lengths = None
        if lengths is not None:
            return run_stack(layer, x, hx, lengths, _segmented_direction)
        count = layer.num_layers * layer.num_directions
        state = _zeros(layer, x, count) if hx is None else tuple(hx)
        weights = _flat_weights(layer, range(layer.num_layers))
        return _call(layer, x, state, weights, layer.num_layers, layer.bidirectional)


NATIVE = register_backend(NativeBackend(), priority=10)
