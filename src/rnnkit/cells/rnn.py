"""The lesson's simple recurrent cell (Elman RNN)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnkit.cells import extras
from rnnkit.cells.base import Cell, Params, State, linear
from rnnkit.validation import check_choice

NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


class RNNCell(Cell):
    r"""Simple RNN step: the lesson's S_i = σ(W·X_i + H·S_(i-1) + b).

    In torch.nn's notation, with σ = tanh or relu::

        h = σ(W_ih x + b_ih + W_hh h_prev + b_hh)

    Shapes: x (B, D), h_prev and h (B, H); weight_ih (H, D) is the lesson's W,
    weight_hh (H, H) its H; the lesson's single b is split into b_ih + b_hh (H,)
    as in torch.nn, so state dicts load both ways.
    """

    torch_cell = nn.RNNCell
    torch_layer = nn.RNN

    gates = 1
    state_count = 1
    gate_names = ("pre",)
    trace_series = {"pre": "pre-activation"}

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None, *, own_parameters: bool = True, **extra_options):
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        super().__init__(input_size, hidden_size, bias, device, dtype, own_parameters=own_parameters,
                         **extra_options)

    @property
    def mode(self) -> str:
        return f"RNN_{self.nonlinearity.upper()}"

    def step(self, x: Tensor, state: State, p: Params, record: dict | None = None) -> tuple[Tensor, State]:
        (h_prev,) = state
        # Recurrent dropout feeds ĥ = h_prev ⊙ m to W_hh, zoneout mixes h_prev back in (see cells.extras).
        h_in = extras.recurrent_input(h_prev, p)
        pre = linear(x, p["weight_ih"], p.get("bias_ih")) + linear(h_in, p["weight_hh"], p.get("bias_hh"))
        h = extras.zone(self, NONLINEARITIES[self.nonlinearity](pre), h_prev, p, "h")
        if record is not None:
            record["pre"] = pre
        return h, (h,)

    def torch_options(self) -> dict:
        return {} if self.nonlinearity == "tanh" else {"nonlinearity": self.nonlinearity}
