"""minLSTM: forget and input gates from x_t alone, normalised to sum to one (Feng et al. 2024)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.cells.base import Params, State
from rnnkit.cells.minimal import MinimalCell


class MinLSTMCell(MinimalCell):
    r"""minLSTM step, gate order (f, i, h)::

        f_t = σ(Linear_f(x_t))                     forget gate
        i_t = σ(Linear_i(x_t))                     input gate
        f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)      normalised: f'_t + i'_t = 1
        h̃_t = Linear_h(x_t)                        candidate ("log" form: g(Linear_h(x_t)))
        h_t = f'_t ⊙ h_(t-1) + i'_t ⊙ h̃_t

    The state is h alone (no separate cell state c: with the output gate gone, c_t and h_t coincide).
    For the scan, the gate logit is u_t = δ_t = log i_t − log f_t = softplus(−Linear_f(x_t)) − softplus(−Linear_i(x_t)):
    i'_t = σ(δ_t), f'_t = 1 − σ(δ_t); log a_t = −softplus(δ_t), log b_t = −softplus(−δ_t) + log g(Linear_h(x_t)).

    Shapes: x_t (B, D); h_prev, h_t and every gate (B, H); weight_ih (3H, D) stacks the rows as [f; i; h];
    bias_ih (3H,). No hidden-to-hidden weights. ``form``: "plain" or "log" (see ``rnnkit.cells.minimal``).
    Trace records: "f" and "i" (normalised: f'_t, i'_t) and "cand" (h̃_t).
    """

    gates = 3
    gate_names = ("f", "i", "h")
    trace_series = {"f": "forget gate", "i": "input gate", "cand": "candidate h̃"}

    def step(self, x: Tensor, state: State, p: Params, record: dict | None = None) -> tuple[Tensor, State]:
        (h_prev,) = state
        k_f, k_i, k_h = self.projections(x, p)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        f_norm, i_norm = f / (f + i), i / (f + i)
        h_tilde = self.candidate(k_h)
        h = f_norm * h_prev + i_norm * h_tilde
        if record is not None:
            record.update(f=f_norm, i=i_norm, cand=h_tilde)
        return h, (h,)

    def gate_logit(self, proj: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, k_h = proj.chunk(3, dim=-1)
        return F.softplus(-k_f) - F.softplus(-k_i), k_h  # δ = log i − log f, from log σ(k) = −softplus(−k)
