"""The contract every recurrent cell follows.

A cell computes one time step, ``(x_t, state) -> (h_t, state)``. It knows nothing
of time, direction or padding: the layer (``rnnkit.layers``) owns those.

A cell is also a *parameter layout*: ``parameter_shapes()`` names each tensor the
step needs (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` and, for cells
with extras, more). A standalone cell registers those names on itself; a layer
registers them with torch.nn's suffixes (``weight_ih_l0_reverse``) and hands them
to ``step`` as a dict, so one piece of code serves both and nothing is copied.

Shape legend used in every cell docstring:
    B  batch size          D  input features
    H  hidden size         G  number of gates (1 RNN, 4 LSTM, 3 GRU)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnkit.cells import extras
from rnnkit.validation import check_positive_int

State = tuple[Tensor, ...]
Params = dict[str, Tensor]


class Cell(nn.Module):
    """Base class: owns the step's configuration and (optionally) its parameters.

    Subclasses set ``gates`` (G) and ``state_count`` (1 for h, 2 for h and c) and
    implement ``step``.
    """

    gates: int = 1
    state_count: int = 1
    gate_names: tuple[str, ...] = ()

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *, own_parameters: bool = True,
                 layer_norm: bool = False, recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        super().__init__()
        # The extras (see ``rnnkit.cells.extras``) are set before the layout is read: they add tensors.
        extras.configure(self, layer_norm, recurrent_dropout, zoneout)
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        self.bias = bias
        self.owns_parameters = own_parameters
        if own_parameters:
            for name, shape in self.parameter_shapes().items():
                self.register_parameter(name, nn.Parameter(torch.empty(shape)))
            self.reset_parameters()

    # -- layout -------------------------------------------------------------
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the tensors ``step`` reads, in torch.nn's order."""
        G, H, D = self.gates, self.hidden_size, self.input_size
        shapes = {"weight_ih": (G * H, D), "weight_hh": (G * H, H)}
        if self.bias:
            shapes.update({"bias_ih": (G * H,), "bias_hh": (G * H,)})
        shapes.update(extras.shapes(self))
        return shapes

    def init_parameter(self, name: str, tensor: Tensor) -> None:
        """torch.nn's initialisation: U(-1/sqrt(H), 1/sqrt(H)) for every tensor (LayerNorm: γ = 1, β = 0)."""
        if extras.init(name, tensor):
            return
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            tensor.uniform_(-bound, bound)

    def reset_parameters(self) -> None:
        for name in self.parameter_shapes():
            self.init_parameter(name, getattr(self, name))

    def own_params(self) -> Params:
        if not self.owns_parameters:
            raise RuntimeError(
                f"this {type(self).__name__} was built by a layer (own_parameters=False) and holds no "
                "weights; call the layer, or build the cell on its own"
            )
        return {name: getattr(self, name) for name in self.parameter_shapes()}

    # -- the step -------------------------------------------------------------
    def initial_state(self, batch: int, like: Tensor) -> State:
        zeros = like.new_zeros(batch, self.hidden_size)
        return (zeros,) * self.state_count

    def sample_masks(self, steps: int, batch: int, like: Tensor, training: bool) -> dict[str, Tensor]:
        """Random masks for recurrent dropout and zoneout over a whole sequence; see ``extras.sample_masks``."""
        return extras.sample_masks(self, steps, batch, like, training)

    @property
    def has_extras(self) -> bool:
        return extras.has_extras(self)

    def step(self, x: Tensor, state: State, p: Params, record: dict | None = None) -> tuple[Tensor, State]:
        """One time step with the parameters ``p``; gate activations go into ``record`` if given."""
        raise NotImplementedError

    def forward(self, x: Tensor, state: Tensor | State | None = None):
        """Standalone use, shaped like torch.nn's cells: (B, D) or (D,) input.

        Returns ``h`` for RNN and GRU cells and ``(h, c)`` for the LSTM cell.
        """
        if x.dim() not in (1, 2):
            raise ValueError(f"x must be (B, D) or (D,), got shape {tuple(x.shape)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x has {x.shape[-1]} features but input_size={self.input_size}")
        unbatched = x.dim() == 1
        if unbatched:
            x = x.unsqueeze(0)
        if state is None:
            state = self.initial_state(x.shape[0], x)
        else:
            state = (state,) if isinstance(state, Tensor) else tuple(state)
            if len(state) != self.state_count:
                raise ValueError(f"state must hold {self.state_count} tensor(s), got {len(state)}")
            expected = (self.hidden_size,) if unbatched else (x.shape[0], self.hidden_size)
            for s in state:
                if tuple(s.shape) != expected:
                    raise ValueError(f"state must have shape {expected}, got {tuple(s.shape)}")
            state = tuple(s.unsqueeze(0) for s in state) if unbatched else state
        p = self.own_params()
        p.update(extras.at_step(self.sample_masks(1, x.shape[0], x, self.training), 0))
        h, new_state = self.step(x, state, p)
        if unbatched:
            new_state = tuple(s.squeeze(0) for s in new_state)
        return new_state[0] if self.state_count == 1 else new_state

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, bias={self.bias}"
        for name, default in (("layer_norm", False), ("recurrent_dropout", 0.0), ("zoneout", 0.0)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x·Wᵀ + b, the affine map every gate uses."""
    return torch.nn.functional.linear(x, weight, bias)
