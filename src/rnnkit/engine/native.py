"""The native back end: torch's own kernels (oneDNN on CPU, cuDNN on GPU).

It calls the functions ``torch.nn.LSTM``/``GRU``/``RNN`` call themselves (``torch.lstm``, ``torch.gru``,
``torch.rnn_tanh``, ``torch.rnn_relu``) with the layer's own parameters in torch's order: no weight is
copied, gradients land on the layer's parameters, and there is no module or reparametrisation in between
(``torch.func.functional_call`` on a twin module cost 5-15% at small sizes).

Variable lengths, exactly, without PackedSequence (torch runs packed input on its slow loop: 0.25× of
padded in training): each layer and direction sorts its rows by length and runs the kernel in segments of
steps, each on the rows still running at its start, carrying the state from one call to the next. The
reverse direction gets its input reversed within each length (see ``stack``), so it has the same lengths.

Where segments end is a cost trade-off (``plan``). For a simple RNN or a GRU one ends at every distinct
length, so no pad step is ever computed and each row's state is read where its sequence ends. An LSTM need
not: rows whose sequence ended inside a segment *hold* their cell state through its pad steps. Their input
there is zero plus a flag channel whose weight (``_hold_column``) puts the input gate's pre-activation below
-10⁴ and the forget gate's above +10⁴, so i = 0 and f = 1 exactly and c_t = 1·c_(t-1) + 0·g = c_(t-1), in
value and in gradient (σ' is exactly 0 there). h at pad steps is discarded (outputs are zeroed past each
length) and the final h is read from the output at each row's last step. A few long segments then replace
up to B short calls: oneDNN's LSTM runs faster on a few wide calls than on many narrow ones.
"""

from __future__ import annotations

from bisect import bisect_right

import torch
from torch import Tensor

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.engine.registry import register_backend
from rnnkit.engine.stack import run_stack
from rnnkit.lengths import full_as_dense, last_valid, rank

_KERNELS = {LSTMCell: torch.lstm, GRUCell: torch.gru}
_RNN_KERNELS = {"tanh": torch.rnn_tanh, "relu": torch.rnn_relu}
# torch's flat-weight order per layer and direction (weight_hr: a projection, LSTM with proj_size)
_ORDER = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


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
    # h has proj_size features with a projection, c hidden_size (torch.lstm tells them apart by that).
    return tuple(x.new_zeros(count, x.shape[1], size) for size in layer.cell_for(0, 0).state_sizes)


# ``plan``'s cost model, in row-steps (one row through one step): a kernel step costs about as much as this
# many extra rows whatever the batch (oneDNN LSTM, 2-core Xeon: 8-13 at hidden 128-512), and a kernel call
# this many row-steps on top.
STEP_ROWS = 8
CALL_ROW_STEPS = 64
# ``plan`` searches at most this many segment ends (a DP quadratic in their number).
PLAN_POINTS = 48


def plan(sorted_lengths: list[int], hold: bool) -> list[int]:
    """Where segments end (ascending; the last is the longest length), for rows sorted longest first.

    Without ``hold`` every distinct length ends a segment. With it, the ends minimise the modelled cost
    Σ steps · (rows running at the segment's start + ``STEP_ROWS``) + ``CALL_ROW_STEPS`` per segment over the
    distinct lengths (or ``PLAN_POINTS`` of them spread by rank), by dynamic programming.
    """
    ends = sorted(set(sorted_lengths))
    if not hold or len(ends) == 1:
        return ends
    if len(ends) > PLAN_POINTS:
        picks = {round(i * (len(ends) - 1) / (PLAN_POINTS - 1)) for i in range(PLAN_POINTS)}
        ends = [ends[i] for i in sorted(picks)]
    points = [0, *ends]
    ascending = sorted(sorted_lengths)
    running = [len(ascending) - bisect_right(ascending, p) for p in points]
    best, back = [0.0] + [float("inf")] * len(ends), [0] * len(points)
    for j in range(1, len(points)):
        for i in range(j):
            cost = best[i] + (points[j] - points[i]) * (running[i] + STEP_ROWS) + CALL_ROW_STEPS
            if cost < best[j]:
                best[j], back[j] = cost, i
    chosen, j = [], len(points) - 1
    while j > 0:
        chosen.append(points[j])
        j = back[j]
    return chosen[::-1]


def _hold_column(weights: list[Tensor], hidden: int) -> Tensor | None:
    """(4H, 1) weight of the flag channel: i rows far below, f rows far above every other term, g and o 0.

    At a held step x = 0 and |h| ≤ 1, so the rest of a gate's pre-activation is at most the row's |W_hh| sum
    plus the biases; 10⁴ beyond that makes σ exactly 0 and 1. None where that is out of the dtype's range
    (half precision with huge weights): those rows then cannot hold.
    """
    w_ih, w_hh, *biases = weights
    bound = w_hh.detach().abs().sum(1).max() + sum(b.detach().abs().max() for b in biases)
    big = float(bound) + 1e4
    if not big < torch.finfo(w_ih.dtype).max / 4:
        return None
    column = w_ih.new_zeros(LSTMCell.gates * hidden, 1)
    column[:hidden] = -big
    column[hidden:2 * hidden] = big
    return column


def _segment_input(x: Tensor, start: int, end: int, rows: Tensor, pad: Tensor | None) -> Tensor:
    """Steps [start, end) of the given rows as one contiguous (steps, rows, F) input, one pass over it.

    With ``pad`` (steps, rows) the rows that hold get zeros at their pad steps and every row a flag channel
    (1 at a pad step): (steps, rows, F + 1).
    """
    if pad is None:
        return x[start:end].index_select(1, rows)
    flag = pad.unsqueeze(2)
    if torch.is_grad_enabled() and x.requires_grad:
        return torch.cat([x[start:end].index_select(1, rows).masked_fill(flag, 0), flag.to(x.dtype)], 2)
    seg = x.new_empty(end - start, rows.shape[0], x.shape[2] + 1)
    torch.index_select(x[start:end], 1, rows, out=seg[..., :-1])
    seg[..., :-1].masked_fill_(flag, 0)
    seg[..., -1] = pad
    return seg


def _segmented_direction(layer, k: int, d: int, x: Tensor, h0, lengths: Tensor, order: Tensor, ranked: list[int],
                         ends: list[int]):
    """One layer and direction over padded (T, B, F) input with ``lengths``; see the module docstring.

    ``order`` sorts the rows longest first, ``ranked`` is their lengths in that order and ``ends`` the plan:
    the same for every layer and direction (the reverse one is reversed within each length), so ``run``
    works them out once.
    """
    steps, batch = x.shape[0], x.shape[1]
    sorted_lengths = lengths[order].to(x.device)
    index = order.to(x.device)
    state = _zeros(layer, x, 1) if h0 is None else tuple(s.index_select(0, index).unsqueeze(0) for s in h0)
    weights = held_weights = _direction_weights(layer, k, d)
    if len(ends) < len(set(ranked)):
        column = _hold_column(weights, layer.hidden_size)
        if column is None:
            ends = plan(ranked, hold=False)
        else:
            held_weights = [torch.cat([weights[0], column], 1), *weights[1:]]
    out = x.new_zeros(steps, batch, layer.cell_for(k, d).output_size)  # the caller's row order; 0 past each length
    finals = []
    start, live, running = 0, batch, batch
    for end in ends:
        while running > 0 and ranked[running - 1] <= end:  # rows sorted longest first
            running -= 1
        rows = index[:live]
        pad = None
        if ranked[live - 1] < end:  # a row ends inside this segment: it holds through the rest
            t = torch.arange(start, end, device=x.device).unsqueeze(1)
            pad = t >= sorted_lengths[:live].unsqueeze(0)
        seg = _segment_input(x, start, end, rows, pad)
        y, state = _call(layer, seg, tuple(s[:, :live] for s in state), held_weights if pad is not None else weights,
                         1, False)
        if pad is not None:  # held rows computed an h nobody asked for
            y = y.masked_fill_(pad.unsqueeze(2), 0) if not y.requires_grad else y.masked_fill(pad.unsqueeze(2), 0)
        out[start:end].index_copy_(1, rows, y)
        finals.append(tuple(s[0, running:live] for s in state))
        start, live = end, running
    inverse = torch.argsort(order).to(x.device)
    finals = [torch.cat([f[i] for f in reversed(finals)], 0).index_select(0, inverse)
              for i in range(layer.cell_type.state_count)]
    finals[0] = last_valid(out, lengths)  # a held row's h ran on past its end; its output there did not
    return out, tuple(finals)


class NativeBackend:
    name = "native"

    def unsupported(self, layer, x, lengths):
        if layer.cell_type not in (LSTMCell, GRUCell, RNNCell):
            return f"torch has no native kernel for {layer.cell_type.__name__}"
        extra = sorted(set(layer.cell_options) - {"nonlinearity", "proj_size"})
        if extra:
            return f"torch's kernels have no cell options {extra}"
        return None

    def run(self, layer, x: Tensor, hx, lengths):
        steps = x.shape[0]
        lengths = full_as_dense(lengths, steps)
        if lengths is not None:
            order = rank(lengths)
            ranked = lengths[order].tolist()
            # A projected h is not bounded by 1, which ``_hold_column``'s bound needs: no holding there.
            ends = plan(ranked, hold=layer.cell_type is LSTMCell and not layer.proj_size)

            def direction(layer, k, d, x_d, h0, lengths, record=None):
                return _segmented_direction(layer, k, d, x_d, h0, lengths, order, ranked, ends)

            return run_stack(layer, x, hx, lengths, direction)
        count = layer.num_layers * layer.num_directions
        state = _zeros(layer, x, count) if hx is None else tuple(hx)
        weights = _flat_weights(layer, range(layer.num_layers))
        return _call(layer, x, state, weights, layer.num_layers, layer.bidirectional)


NATIVE = register_backend(NativeBackend(), priority=10)
