"""minGRU: the GRU with its gate and candidate read from x_t alone (Feng et al. 2024)."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.base import Params, State
from rnnkit.cells.minimal import MinimalCell


class MinGRUCell(MinimalCell):
    r"""minGRU step, gate order (z, h)::

        z_t = σ(Linear_z(x_t))                     update gate
        h̃_t = Linear_h(x_t)                        candidate ("log" form: g(Linear_h(x_t)))
        h_t = (1 − z_t) ⊙ h_(t-1) + z_t ⊙ h̃_t

    so h_t = a_t ⊙ h_(t-1) + b_t with a_t = 1 − z_t and b_t = z_t ⊙ h̃_t: the gate logit is u_t = Linear_z(x_t),
    and in log space log a_t = −softplus(u_t), log b_t = −softplus(−u_t) + log g(Linear_h(x_t)).

    Shapes: x_t (B, D); h_prev, h_t, z_t, h̃_t (B, H); weight_ih (2H, D) stacks the rows as [z; h];
    bias_ih (2H,). No hidden-to-hidden weights. ``form``: "plain" or "log" (see ``rnnkit.cells.minimal``).
    Trace records: "z" and "cand" (h̃_t).
    """

    gates = 2
    gate_names = ("z", "h")
    trace_series = {"z": "update gate", "cand": "candidate h̃"}

    def step(self, x: Tensor, state: State, p: Params, record: dict | None = None) -> tuple[Tensor, State]:
        (h_prev,) = state
        k_z, k_h = self.projections(x, p)
        z = torch.sigmoid(k_z)
        h_tilde = self.candidate(k_h)
        h = (1 - z) * h_prev + z * h_tilde
        if record is not None:
            record.update(z=z, cand=h_tilde)
        return h, (h,)

    def gate_logit(self, proj: Tensor) -> tuple[Tensor, Tensor]:
        k_z, k_h = proj.chunk(2, dim=-1)
        return k_z, k_h
