"""rnnkit recurrent layers as ONNX RNN / GRU / LSTM operators.

Each layer k of a stack becomes one ONNX node running both directions, with ``sequence_lens`` for padded
batches: ONNX then reads each sequence only up to its length in both directions (the reverse direction starts
at each sequence's own last token, as rnnkit and torch.nn's packed sequences do), writes zeros past it and
returns each sequence's state at its own last token, which is rnnkit's contract for padded input.

Layouts (torch.nn / rnnkit → ONNX), per direction:
    W = weight_ih (G·H, D), R = weight_hh (G·H, H), B = [bias_ih; bias_hh] (2·G·H)
    gate blocks reordered: LSTM torch (i, f, g, o) → ONNX (i, o, f, c); GRU torch (r, z, n) → ONNX (z, r, h)
    GRU with ``linear_before_reset=1``: torch's n = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn)) applies the reset
    gate after the recurrent matmul and its bias; ONNX's default (0) applies it before, a different model.

Cell extras: recurrent dropout is the identity at inference, so it exports as the plain cell. Layer
normalisation inside the cell and zoneout (whose eval-mode blend h = (1-p)·h̃ + p·h_prev feeds every later
step) have no ONNX operator: layers using them run as a Scan over time with the step written out (``scan.py``),
as do the minimal cells, minGRU and minLSTM (``minimal.py``: the recurrence h_t = a_t ⊙ h_(t-1) + b_t alone).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.export.graph import INT64, GraphBuilder
from rnnkit.export.minimal import MINIMAL_CELLS
from rnnkit.export.scan import needs_scan, scan_layer

# torch's gate blocks in ONNX's order, per cell.
_GATE_ORDER = {LSTMCell: (0, 3, 1, 2), GRUCell: (1, 0, 2), RNNCell: (0,)}
_OP = {LSTMCell: "LSTM", GRUCell: "GRU", RNNCell: "RNN"}


class ExportError(ValueError):
    """A model or layer that cannot be written to ONNX, or whose export failed its parity check."""


def check_exportable(layer) -> None:
    """Raise ExportError naming what an rnnkit Recurrent layer uses that the export cannot write."""
    cell = layer.cell_type
    if cell not in _OP and cell not in MINIMAL_CELLS:
        known = ", ".join(c.__name__ for c in (*_OP, *MINIMAL_CELLS))
        raise ExportError(f"cannot export a layer of the custom cell {cell.__name__}: the export knows the steps "
                          f"of {known} only")
    proj_size = layer.cell_options.get("proj_size", 0)
    if proj_size:
        raise ExportError(f"cannot export an LSTM with proj_size={proj_size}: ONNX's LSTM operator has no "
                          "projection and the export does not write one")


def _reorder(t: Tensor, order: tuple[int, ...]) -> Tensor:
    return torch.cat([t.chunk(len(order), dim=0)[i] for i in order], dim=0)


def _layer_weights(layer, k: int) -> tuple[Tensor, Tensor, Tensor | None]:
    """W (dirs, G·H, D), R (dirs, G·H, H), B (dirs, 2·G·H) or None, in ONNX's gate order."""
    order = _GATE_ORDER[layer.cell_type]
    ws, rs, bs = [], [], []
    for d in range(layer.num_directions):
        p = layer.params_for(k, d)
        ws.append(_reorder(p["weight_ih"], order))
        rs.append(_reorder(p["weight_hh"], order))
        if layer.bias:
            bs.append(torch.cat([_reorder(p["bias_ih"], order), _reorder(p["bias_hh"], order)]))
    return torch.stack(ws), torch.stack(rs), (torch.stack(bs) if layer.bias else None)


def _attributes(layer) -> dict:
    dirs = layer.num_directions
    attrs = {"hidden_size": layer.hidden_size, "direction": "bidirectional" if dirs == 2 else "forward"}
    if layer.cell_type is GRUCell:
        attrs["linear_before_reset"] = 1
    if layer.cell_type is RNNCell:
        attrs["activations"] = ["Relu" if layer.cell_for(0, 0).nonlinearity == "relu" else "Tanh"] * dirs
    return attrs


def rows(g: GraphBuilder, state: str | None, start: int, count: int) -> str:
    """state[start:start + count] along the first axis; "" (an omitted ONNX input) when there is no state."""
    if state is None:
        return ""
    return g.op("Slice", [state, g.ints([start]), g.ints([start + count]), g.ints([0])])


def _operator_layer(g: GraphBuilder, layer, k: int, x: str, seq_lens: str | None, h0: str | None,
                    c0: str | None, prefix: str) -> tuple[str, str, str | None]:
    """Layer k as one ONNX RNN/GRU/LSTM node running both directions; h0/c0 (dirs, B, H) or None."""
    w, r, b = _layer_weights(layer, k)
    is_lstm = layer.cell_type is LSTMCell
    inputs = [x, g.weight(f"{prefix}.W_l{k}", w), g.weight(f"{prefix}.R_l{k}", r),
              g.weight(f"{prefix}.B_l{k}", b) if b is not None else "", seq_lens or "", h0 or ""]
    if is_lstm:
        inputs.append(c0 or "")
    outs = g.op(_OP[layer.cell_type], inputs, 3 if is_lstm else 2, **_attributes(layer))
    # Y (T, dirs, B, H) → (T, B, dirs·H): forward features first, as torch concatenates them.
    y = g.op("Reshape", [g.op("Transpose", [outs[0]], perm=[0, 2, 1, 3]), g.ints([0, 0, -1])])
    return y, outs[1], (outs[2] if is_lstm else None)


def recurrent_stack(g: GraphBuilder, layer, x: str, seq_lens: str | None, h0: str | None, c0: str | None,
                    prefix: str) -> tuple[str, str, str | None]:
    """Run every layer of ``layer`` on x (T, B, D), time-major.

    ``seq_lens`` int32 (B,) or None (every sequence full length); ``h0``/``c0`` (L·dirs, B, H) or None (zeros).
    Returns output (T, B, dirs·H) zero past each length, h_n and c_n (L·dirs, B, H) (c_n None but for LSTM).
    """
    check_exportable(layer)
    dirs, is_lstm, scan = layer.num_directions, layer.cell_type is LSTMCell, needs_scan(layer)
    lens = g.op("Cast", [seq_lens], to=INT64) if scan and seq_lens is not None else None  # Scan's ops take int64
    h_finals, c_finals = [], []
    for k in range(layer.num_layers):
        h_k = rows(g, h0, k * dirs, dirs) or None
        c_k = (rows(g, c0, k * dirs, dirs) or None) if is_lstm else None
        if scan:
            x, h_n, c_n = scan_layer(g, layer, k, x, lens, h_k, c_k, prefix)
        else:
            x, h_n, c_n = _operator_layer(g, layer, k, x, seq_lens, h_k, c_k, prefix)
        h_finals.append(h_n)
        c_finals.append(c_n)
    concat = lambda parts: parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=0)  # noqa: E731
    return x, concat(h_finals), (concat(c_finals) if is_lstm else None)
