"""Long short-term memory: a cell state C managed by forget, input and output gates."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.cells import extras
from rnnkit.cells.base import Cell, Params, State, linear


class LSTMCell(Cell):
    r"""LSTM step in torch.nn's gate order (i, f, g, o)::

        i = σ(W_ii x + b_ii + W_hi h_prev + b_hi)     input gate: what to write into C
        f = σ(W_if x + b_if + W_hf h_prev + b_hf)     forget gate: which parts of C to keep
        g = tanh(W_ig x + b_ig + W_hg h_prev + b_hg)  candidate values
        o = σ(W_io x + b_io + W_ho h_prev + b_ho)     output gate: which parts of C to show
        c = f ⊙ c_prev + i ⊙ g
        h = o ⊙ tanh(c)

    Shapes: x (B, D); h_prev, c_prev, h, c and every gate (B, H);
    weight_ih (4H, D) and weight_hh (4H, H) stack the gates' rows as [i; f; g; o];
    bias_ih, bias_hh (4H,). The state is the pair (h, c).

    With a projection (``proj_size`` P > 0, torch.nn.LSTM's LSTMP)::

        h = W_hr (o ⊙ tanh(c))                        weight_hr (P, H); h and h_prev (B, P), weight_hh (4H, P)

    With extras (``rnnkit.cells.extras``): LayerNorm-LSTM
    z = LN_ih(W_ih x) + LN_hh(W_hh ĥ) + b_ih + b_hh and h = o ⊙ tanh(LN_c(c)); recurrent dropout
    ĥ = h_prev ⊙ m; zoneout on both h and c.
    """

    torch_cell = nn.LSTMCell
    torch_layer = nn.LSTM

    gates = 4
    state_count = 2
    gate_names = ("i", "f", "g", "o")
    trace_series = {"i": "input gate", "f": "forget gate", "g": "candidate", "o": "output gate"}
    mode = "LSTM"
    supports_projection = True

    def step(self, x: Tensor, state: State, p: Params, record: dict | None = None) -> tuple[Tensor, State]:
        h_prev, c_prev = state
        if not self.has_extras:
            z = linear(x, p["weight_ih"], p.get("bias_ih")) + linear(h_prev, p["weight_hh"], p.get("bias_hh"))
        else:
            a_x = linear(x, p["weight_ih"], None)
            a_h = linear(extras.recurrent_input(h_prev, p), p["weight_hh"], None)
            if self.layer_norm:
                a_x, a_h = extras.norm(a_x, p, "ih"), extras.norm(a_h, p, "hh")
            z = a_x + a_h
            if self.bias:
                z = z + p["bias_ih"] + p["bias_hh"]
        z_i, z_f, z_g, z_o = z.tensor_split(4, dim=1)
        i, f, g, o = torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)
        c = f * c_prev + i * g
        h = o * torch.tanh(extras.norm(c, p, "c") if self.layer_norm else c)
        if self.proj_size:
            h = linear(h, p["weight_hr"], None)
        if self.zoneout > 0:
            h, c = extras.zone(self, h, h_prev, p, "h"), extras.zone(self, c, c_prev, p, "c")
        if record is not None:
            record.update(i=i, f=f, g=g, o=o)
        return h, (h, c)
