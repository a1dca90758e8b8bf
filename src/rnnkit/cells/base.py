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
from rnnkit.cells.script import scriptable_cell
from rnnkit.validation import DtypeMismatchError, ShapeError, check_nonnegative_int

State = tuple[Tensor, ...]
Params = dict[str, Tensor]


class Cell(nn.Module):
    """Base class: owns the step's configuration and (optionally) its parameters.

    Subclasses set ``gates`` (G) and ``state_count`` (1 for h, 2 for h and c) and
    implement ``step``. The positional arguments are torch.nn's cells' (``device`` and
    ``dtype`` are factory arguments for the parameters); the rest are rnnkit's, keyword-only.
    ``proj_size`` P > 0 (cells with ``supports_projection``, i.e. LSTM) projects h to P features
    with ``weight_hr`` (P, H), as torch.nn.LSTM's ``proj_size`` does.
    """

    gates: int = 1
    state_count: int = 1
    gate_names: tuple[str, ...] = ()
    # What ``step`` writes into ``record``: series name → what it is (the trace adds "h", and "c" for two states).
    # A name means one thing in every cell: ``rnnkit.layers.trace.SERIES`` gathers them and checks it.
    trace_series: dict[str, str] = {}
    supports_projection: bool = False
    # torch.nn's own cell and layer of this kind (torch.jit.script's stand-ins, ``cells.script``), declared by each
    # class for itself (a subclass does not inherit them); None: torch.nn has none.
    torch_cell: type[nn.Module] | None = None
    torch_layer: type[nn.Module] | None = None

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 own_parameters: bool = True, proj_size: int = 0, layer_norm: bool = False,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        super().__init__()
        # The extras (see ``rnnkit.cells.extras``) are set before the layout is read: they add tensors.
        extras.configure(self, layer_norm, recurrent_dropout, zoneout)
        # torch.nn's cells accept zero sizes (an empty state); a layer asks for positive ones itself.
        self.input_size = check_nonnegative_int("input_size", input_size)
        self.hidden_size = check_nonnegative_int("hidden_size", hidden_size)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        self.bias = bias
        self.proj_size = self._check_proj_size(proj_size)
        # Features of h (P with a projection, else H) and of each state tensor (h, then c for LSTM): plain
        # attributes, read on every layer call (a property costs a few µs there).
        self.output_size = self.proj_size or self.hidden_size
        self.state_sizes = (self.output_size,) + (self.hidden_size,) * (self.state_count - 1)
        self.owns_parameters = own_parameters
        if own_parameters:
            factory = {"device": device, "dtype": dtype}
            for name, shape in self.parameter_shapes().items():
                self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
            self.reset_parameters()

    def _check_proj_size(self, proj_size) -> int:
        check_nonnegative_int("proj_size", proj_size)
        if proj_size == 0:
            return 0
        if not self.supports_projection:
            raise ValueError(f"proj_size is only supported for LSTM, not {type(self).__name__}; got {proj_size}")
        if proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size={self.hidden_size}, got {proj_size}")
        if self.has_extras:
            raise ValueError(f"proj_size={proj_size} cannot be combined with layer_norm, recurrent_dropout or "
                             "zoneout")
        return proj_size

    # -- layout -------------------------------------------------------------
    @property
    def mode(self) -> str:
        """torch.nn.RNNBase's name for the cell kind ('LSTM', 'GRU', 'RNN_TANH', 'RNN_RELU'); else the class."""
        return type(self).__name__

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the tensors ``step`` reads, in torch.nn's order."""
        G, H, D = self.gates, self.hidden_size, self.input_size
        shapes = {"weight_ih": (G * H, D), "weight_hh": (G * H, self.output_size)}
        if self.bias:
            shapes.update({"bias_ih": (G * H,), "bias_hh": (G * H,)})
        if self.proj_size:
            shapes["weight_hr"] = (self.proj_size, H)
        shapes.update(extras.shapes(self))
        return shapes

    def init_parameter(self, name: str, tensor: Tensor) -> None:
        """torch.nn's initialisation: U(-1/sqrt(H), 1/sqrt(H)) for every tensor (LayerNorm: γ = 1, β = 0)."""
        if extras.init(name, tensor):
            return
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
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
        return tuple(like.new_zeros(batch, size) for size in self.state_sizes)

    def sample_masks(self, steps: int, batch: int, like: Tensor, training: bool) -> dict[str, Tensor]:
        """Random masks for recurrent dropout and zoneout over a whole sequence; see ``extras.sample_masks``."""
        return extras.sample_masks(self, steps, batch, like, training)

    @property
    def has_extras(self) -> bool:
        return extras.has_extras(self)

    def step(self, x: Tensor, state: State, p: Params, record: dict | None = None) -> tuple[Tensor, State]:
        """One time step with the parameters ``p``; gate activations go into ``record`` if given."""
        raise NotImplementedError

    def forward(self, input: Tensor, hx: Tensor | State | None = None):
        """Standalone use, shaped like torch.nn's cells: (B, D) or (D,) input.

        Returns ``h`` for RNN and GRU cells and ``(h, c)`` for the LSTM cell.
        """
        p = self.own_params()
        x, state, unbatched = self._check_call(input, hx, p["weight_ih"])
        p.update(extras.at_step(self.sample_masks(1, x.shape[0], x, self.training), 0))
        h, new_state = self.step(x, state, p)
        if unbatched:
            new_state = tuple(s.squeeze(0) for s in new_state)
        return new_state[0] if self.state_count == 1 else new_state

    def _check_call(self, input: Tensor, hx, weight: Tensor) -> tuple[Tensor, State, bool]:
        """torch.nn's cell checks and exception classes (see ``rnnkit.validation``), with rnnkit's messages."""
        if input.dim() not in (1, 2):
            raise ValueError(f"input must be (B, D) or (D,), got shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"input has {input.shape[-1]} features but input_size={self.input_size}")
        if input.dtype != weight.dtype and not torch.is_autocast_enabled(input.device.type):
            raise DtypeMismatchError(f"input has dtype {input.dtype} but the cell's weights have {weight.dtype}")
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input
        if hx is None:
            return x, self.initial_state(x.shape[0], x), unbatched
        state = (hx,) if isinstance(hx, Tensor) else tuple(hx)
        if len(state) != self.state_count:
            raise ValueError(f"state must hold {self.state_count} tensor(s), got {len(state)}")
        for s, size in zip(state, self.state_sizes, strict=True):
            if s.dim() not in (1, 2):
                raise ValueError(f"state must be (B, H) or (H,), got shape {tuple(s.shape)}")
            expected = (size,) if unbatched else (x.shape[0], size)
            if tuple(s.shape) != expected:
                raise ShapeError(f"state must have shape {expected}, got {tuple(s.shape)}")
            if s.dtype != input.dtype and not torch.is_autocast_enabled(input.device.type):
                raise DtypeMismatchError(f"state has dtype {s.dtype} but the input has {input.dtype}")
        return x, (tuple(s.unsqueeze(0) for s in state) if unbatched else state), unbatched

    def __prepare_scriptable__(self):
        """``torch.jit.script``: torch.nn's own cell sharing these parameters, or a clear error."""
        return scriptable_cell(self)

    def extra_repr(self) -> str:
        """torch.nn's cell repr, then the rnnkit-only options that are set."""
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        options = {**self.torch_options(), **self.rnnkit_options()}
        return s + "".join(f", {k}={v}" for k, v in options.items())

    def torch_options(self) -> dict:
        """Options of torch.nn's own cell beyond the sizes and bias, where they differ from their defaults."""
        return {}

    def rnnkit_options(self) -> dict:
        """The options torch.nn's cells lack, where they differ from their defaults."""
        defaults = {"proj_size": 0, "layer_norm": False, "recurrent_dropout": 0.0, "zoneout": 0.0}
        return {k: getattr(self, k) for k, v in defaults.items() if getattr(self, k) != v}


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x·Wᵀ + b, the affine map every gate uses."""
    return torch.nn.functional.linear(x, weight, bias)
