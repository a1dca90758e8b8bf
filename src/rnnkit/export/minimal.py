"""minGRU / minLSTM layers as an ONNX Scan whose body is the linear recurrence alone.

The minimal cells' gates read x_t only (``rnnkit.cells.minimal``), so everything but h_t = a_t ⊙ h_(t-1) + b_t
is computed for every step at once, outside the loop, as the layers' "scan" back end computes it:

    proj = x·W_ihᵀ + b_ih  (T, B, G·H), split into the cell's blocks (minGRU [z; h], minLSTM [f; i; h])
    u    = k_z (minGRU)  or  softplus(−k_f) − softplus(−k_i) = log i − log f (minLSTM)
    c    = k_h ("plain" form)  or  g(k_h) = k_h + 0.5 if k_h ≥ 0 else σ(k_h) ("log" form)
    a    = 1 − σ(u),   b = σ(u) ⊙ c

and the Scan's body is one Mul and one Add a step. Padding follows the reference back end: past a row's length
a = 1 and b = 0, so the state is held exactly (1·h + 0 = h) and the scan's final state is the one at the row's
own last token; the outputs past the length are then set to zero. The reverse direction reads each row
backwards from its own last token (ReverseSequence before and after).
"""

from __future__ import annotations

from rnnkit.cells import MinGRUCell, MinLSTMCell
from rnnkit.export.graph import FLOAT, GraphBuilder

MINIMAL_CELLS = (MinGRUCell, MinLSTMCell)


def is_minimal(layer) -> bool:
    return layer.cell_type in MINIMAL_CELLS


def _gate_logit(g: GraphBuilder, cell, blocks: list[str]) -> str:
    """u, whose sigmoid weighs the candidate (see ``MinGRUCell.gate_logit``, ``MinLSTMCell.gate_logit``)."""
    if isinstance(cell, MinGRUCell):
        return blocks[0]
    k_f, k_i = blocks[0], blocks[1]
    return g.op("Sub", [g.op("Softplus", [g.op("Neg", [k_f])]), g.op("Softplus", [g.op("Neg", [k_i])])])


def _candidate(g: GraphBuilder, cell, k_h: str) -> str:
    """h̃: the projection itself ("plain") or the positive g of it ("log", ``rnnkit.cells.minimal.g``)."""
    if cell.form != "log":
        return k_h
    zero = g.scalar(0.0)
    return g.op("Where", [g.op("GreaterOrEqual", [k_h, zero]), g.op("Add", [g.op("Relu", [k_h]), g.scalar(0.5)]),
                          g.op("Sigmoid", [k_h])])


def _coefficients(g: GraphBuilder, cell, p: dict, x: str, valid: str, prefix: str) -> tuple[str, str]:
    """(a, b) (T, B, H) for every step; a = 1, b = 0 past each row's length (the state is held)."""
    proj = g.linear(x, p["weight_ih"], p.get("bias_ih"), prefix)
    blocks = g.op("Split", [proj], cell.gates, axis=2, num_outputs=cell.gates)
    s = g.op("Sigmoid", [_gate_logit(g, cell, blocks)])
    a = g.op("Sub", [g.scalar(1.0), s])
    b = g.op("Mul", [s, _candidate(g, cell, blocks[-1])])
    return g.op("Where", [valid, a, g.scalar(1.0)]), g.op("Where", [valid, b, g.scalar(0.0)])


def _recurrence(g: GraphBuilder, a: str, b: str, h0: str) -> tuple[str, str]:
    """Scan h_t = a_t ⊙ h_(t-1) + b_t from h0 (B, H): (every h_t (T, B, H), the last h)."""
    body = g.subgraph()
    h_prev, a_t, b_t = (body.typed(name, FLOAT) for name in ("h_prev", "a_t", "b_t"))
    h = body.op("Add", [body.op("Mul", [a_t, h_prev]), b_t])
    graph = body.body(g.name("min_step"), [h_prev, a_t, b_t], [h, body.op("Identity", [h])])
    h_n, y = g.op("Scan", [h0, a, b], 2, body=graph, num_scan_inputs=2)
    return y, h_n


def minimal_direction(g: GraphBuilder, layer, k: int, d: int, x: str, lens: str, valid: str, h0: str,
                      c0: None, prefix: str) -> tuple[str, str, None]:
    """Layer k, direction d over x (T, B, D); ``lens`` int64 (B,), ``valid`` bool (T, B, 1), h0 (B, H).

    Returns output (T, B, H) zero past each length, the state at each row's last token, and None (no c).
    """
    cell, p = layer.cell_for(k, d), layer.params_for(k, d)
    prefix = f"{prefix}.l{k}" + ("_reverse" if d else "")
    if d:
        x = g.op("ReverseSequence", [x, lens], batch_axis=1, time_axis=0)
    y, h_n = _recurrence(g, *_coefficients(g, cell, p, x, valid, prefix), h0)
    y = g.op("Where", [valid, y, g.scalar(0.0)])
    if d:
        y = g.op("ReverseSequence", [y, lens], batch_axis=1, time_axis=0)
    return y, h_n, None


__all__ = ["MINIMAL_CELLS", "is_minimal", "minimal_direction"]
