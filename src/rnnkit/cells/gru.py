"""Gated recurrent unit: the lighter gated cell, one state vector and two gates."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.cells import extras
from rnnkit.cells.base import Cell, Params, State, linear


class GRUCell(Cell):
    r"""GRU step in torch.nn's formulation and gate order (r, z, n)::

        r = σ(W_ir x + b_ir + W_hr h_prev + b_hr)          reset gate
        z = σ(W_iz x + b_iz + W_hz h_prev + b_hz)          update gate
        n = tanh(W_in x + b_in + r ⊙ (W_hn h_prev + b_hn))  candidate state
        h = (1 - z) ⊙ n + z ⊙ h_prev

    The reset gate multiplies the *projected* previous state (W_hn h_prev + b_hn), not
    h_prev itself, as in cuDNN and torch.nn.

    Shapes: x (B, D); h_prev, h and every gate (B, H); weight_ih (3H, D) and
    weight_hh (3H, H) stack the rows as [r; z; n]; bias_ih, bias_hh (3H,).

    With extras (``rnnkit.cells.extras``): LayerNorm-GRU uses LN_ih(W_ih x) + b_ih and
    LN_hh(W_hh ĥ) + b_hh in place of the two projections; recurrent dropout ĥ = h_prev ⊙ m feeds only
    W_hh (z ⊙ h_prev keeps the true state); zoneout on h.
    """

    torch_cell = nn.GRUCell
    torch_layer = nn.GRU

    gates = 3
    state_count = 1
    gate_names = ("r", "z", "n")
    trace_series = {"r": "reset gate", "z": "update gate", "n": "candidate"}
    mode = "GRU"

    def step(self, x: Tensor, state: State, p: Params, record: dict | None = None) -> tuple[Tensor, State]:
        (h_prev,) = state
        if not self.has_extras:
            x_r, x_z, x_n = linear(x, p["weight_ih"], p.get("bias_ih")).tensor_split(3, dim=1)
            h_r, h_z, h_n = linear(h_prev, p["weight_hh"], p.get("bias_hh")).tensor_split(3, dim=1)
        else:
            a_x = linear(x, p["weight_ih"], None)
            a_h = linear(extras.recurrent_input(h_prev, p), p["weight_hh"], None)
            if self.layer_norm:
                a_x, a_h = extras.norm(a_x, p, "ih"), extras.norm(a_h, p, "hh")
            if self.bias:
                a_x, a_h = a_x + p["bias_ih"], a_h + p["bias_hh"]
            x_r, x_z, x_n = a_x.tensor_split(3, dim=1)
            h_r, h_z, h_n = a_h.tensor_split(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = extras.zone(self, (1 - z) * n + z * h_prev, h_prev, p, "h")
        if record is not None:
            record.update(r=r, z=z, n=n)
        return h, (h,)
