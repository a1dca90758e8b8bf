"""Layers with cell extras as an ONNX Scan over time: the cell's step written out, eval-mode semantics.

ONNX's RNN/GRU/LSTM operators have no layer normalisation inside the cell and no zoneout, so a layer using
either runs as a general graph instead: for each layer and direction, the input projection for every step at
once (``W_ih x``, its LayerNorm and bias), then a Scan whose body is one step of the cell exactly as
``rnnkit.cells`` computes it (see ``cells/extras.py``), with the extras' inference-time forms:

    recurrent dropout   identity (no mask at inference)
    zoneout p           h = h̃ + p·(h_prev - h̃)   (LSTM: the same for c)
    layer_norm          LN_ih, LN_hh over the G·H features before the biases; LSTM also LN_c before tanh

Padding follows the reference back end: past its length a sequence keeps its state and outputs zeros. The
reverse direction reads each sequence backwards from its own last token (ReverseSequence before and after).
Slower than the fused operators (one body call per step), but exact. The minimal cells (minGRU, minLSTM) have
no ONNX operator either and run as a Scan too, with a body of their own (``minimal.py``).
"""

from __future__ import annotations

from torch import Tensor

from rnnkit.cells import GRUCell, LSTMCell
from rnnkit.cells.extras import EPS
from rnnkit.export.graph import BOOL, FLOAT, GraphBuilder
from rnnkit.export.minimal import is_minimal, minimal_direction


def needs_scan(layer) -> bool:
    if is_minimal(layer):
        return True
    options = layer.cell_options
    return bool(options.get("layer_norm")) or options.get("zoneout", 0.0) > 0


def _norm(g: GraphBuilder, v: str, p: dict[str, Tensor], which: str, prefix: str) -> str:
    return g.op("LayerNormalization", [v, g.weight(f"{prefix}.ln_{which}_weight", p[f"ln_{which}_weight"]),
                                       g.weight(f"{prefix}.ln_{which}_bias", p[f"ln_{which}_bias"])],
                axis=-1, epsilon=EPS)


def _zone(g: GraphBuilder, new: str, prev: str, rate: float) -> str:
    return new if rate == 0 else g.op("Add", [new, g.op("Mul", [g.scalar(rate), g.op("Sub", [prev, new])])])


def _step(body: GraphBuilder, cell, p: dict[str, Tensor], prefix: str, h_prev: str, c_prev: str | None,
          ax: str) -> tuple[str, str | None]:
    """One step from the precomputed input projection ``ax`` (B, G·H); returns (h, c)."""
    ah = body.op("MatMul", [h_prev, body.weight(f"{prefix}.weight_hh_t", p["weight_hh"].detach().t())])
    if cell.layer_norm:
        ah = _norm(body, ah, p, "hh", prefix)
    if cell.bias:
        ah = body.op("Add", [ah, body.weight(f"{prefix}.bias_hh", p["bias_hh"])])
    if isinstance(cell, LSTMCell):
        z_i, z_f, z_g, z_o = body.op("Split", [body.op("Add", [ax, ah])], 4, axis=1, num_outputs=4)
        i, f, o = (body.op("Sigmoid", [v]) for v in (z_i, z_f, z_o))
        c = body.op("Add", [body.op("Mul", [f, c_prev]), body.op("Mul", [i, body.op("Tanh", [z_g])])])
        h = body.op("Mul", [o, body.op("Tanh", [_norm(body, c, p, "c", prefix) if cell.layer_norm else c])])
        return _zone(body, h, h_prev, cell.zoneout), _zone(body, c, c_prev, cell.zoneout)
    if isinstance(cell, GRUCell):
        x_r, x_z, x_n = body.op("Split", [ax], 3, axis=1, num_outputs=3)
        h_r, h_z, h_n = body.op("Split", [ah], 3, axis=1, num_outputs=3)
        r = body.op("Sigmoid", [body.op("Add", [x_r, h_r])])
        z = body.op("Sigmoid", [body.op("Add", [x_z, h_z])])
        n = body.op("Tanh", [body.op("Add", [x_n, body.op("Mul", [r, h_n])])])
        h = body.op("Add", [body.op("Mul", [body.op("Sub", [body.scalar(1.0), z]), n]),
                            body.op("Mul", [z, h_prev])])
        return _zone(body, h, h_prev, cell.zoneout), None
    act = "Relu" if cell.nonlinearity == "relu" else "Tanh"
    return _zone(body, body.op(act, [body.op("Add", [ax, ah])]), h_prev, cell.zoneout), None


def scan_direction(g: GraphBuilder, layer, k: int, d: int, x: str, lens: str, valid: str, h0: str, c0: str | None,
                   prefix: str) -> tuple[str, str, str | None]:
    """Layer k, direction d over x (T, B, D); ``lens`` int64 (B,), ``valid`` bool (T, B, 1), h0/c0 (B, H).

    Returns output (T, B, H) zero past each length, and the state at each sequence's last token.
    """
    cell, p = layer.cell_for(k, d), layer.params_for(k, d)
    prefix = f"{prefix}.l{k}" + ("_reverse" if d else "")
    if d:
        x = g.op("ReverseSequence", [x, lens], batch_axis=1, time_axis=0)
    ax = g.op("MatMul", [x, g.weight(f"{prefix}.weight_ih_t", p["weight_ih"].detach().t())])
    if cell.layer_norm:
        ax = _norm(g, ax, p, "ih", prefix)
    if cell.bias:
        ax = g.op("Add", [ax, g.weight(f"{prefix}.bias_ih", p["bias_ih"])])
    is_lstm = c0 is not None
    body = g.subgraph()
    h_prev, c_prev = body.typed("h_prev", FLOAT), body.typed("c_prev", FLOAT) if is_lstm else None
    ax_t, valid_t = body.typed("ax_t", FLOAT), body.typed("valid_t", BOOL)
    h, c = _step(body, cell, p, prefix, h_prev, c_prev, ax_t)
    zero = body.scalar(0.0)
    outputs = [body.op("Where", [valid_t, h, h_prev])]
    if is_lstm:
        outputs.append(body.op("Where", [valid_t, c, c_prev]))
    outputs.append(body.op("Where", [valid_t, h, zero]))
    inputs = [h_prev] + ([c_prev] if is_lstm else []) + [ax_t, valid_t]
    graph = body.body(g.name("step"), inputs, outputs)
    states = [h0] + ([c0] if is_lstm else [])
    results = g.op("Scan", [*states, ax, valid], len(states) + 1, body=graph, num_scan_inputs=2)
    y = results[-1]
    if d:
        y = g.op("ReverseSequence", [y, lens], batch_axis=1, time_axis=0)
    return y, results[0], (results[1] if is_lstm else None)


def scan_layer(g: GraphBuilder, layer, k: int, x: str, lens: str | None, h0: str | None, c0: str | None,
               prefix: str) -> tuple[str, str, str | None]:
    """Layer k, both directions: output (T, B, dirs·H), h_n and c_n (dirs, B, H); h0/c0 (dirs, B, H) or None."""
    if lens is None:  # every sequence full length
        lens = g.op("Expand", [g.op("Unsqueeze", [g.dim(x, 0), g.ints([0])]),
                               g.op("Unsqueeze", [g.dim(x, 1), g.ints([0])])])
    valid = g.op("Unsqueeze", [g.time_mask(lens, g.dim(x, 0)), g.ints([2])])
    zeros = None
    if h0 is None or (c0 is None and layer.cell_type is LSTMCell):
        shape = g.op("Concat", [g.op("Unsqueeze", [g.dim(x, 1), g.ints([0])]), g.ints([layer.hidden_size])], axis=0)
        zeros = g.op("ConstantOfShape", [shape])  # (B, H) float32 zeros

    def row(state: str | None, d: int) -> str:
        """Direction d's (B, H) initial state, zeros when none is given."""
        if state is None:
            return zeros
        return g.op("Squeeze", [g.op("Slice", [state, g.ints([d]), g.ints([d + 1]), g.ints([0])]), g.ints([0])])

    direction = minimal_direction if is_minimal(layer) else scan_direction
    ys, hs, cs = [], [], []
    for d in range(layer.num_directions):
        c_d = row(c0, d) if layer.cell_type is LSTMCell else None
        y, h, c = direction(g, layer, k, d, x, lens, valid, row(h0, d), c_d, prefix)
        ys.append(y)
        hs.append(g.op("Unsqueeze", [h, g.ints([0])]))
        if c is not None:
            cs.append(g.op("Unsqueeze", [c, g.ints([0])]))
    join = lambda parts, axis: parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=axis)  # noqa: E731
    return join(ys, 2), join(hs, 0), (join(cs, 0) if cs else None)


__all__ = ["needs_scan", "scan_layer"]
