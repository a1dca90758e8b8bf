"""Recurrent layers: sequences, lengths, directions and stacking around any cell.

``Recurrent`` runs any ``rnnkit.cells.Cell`` subclass; ``RNN``, ``LSTM`` and ``GRU``
take torch.nn's arguments and keep torch.nn's parameter names
(``weight_ih_l0``, ``bias_hh_l1_reverse``, ...), so state dicts load both ways.

Shapes (batch_first=False; swap T and B for batch_first=True), H_out = proj_size P if set, else H:
    input (T, B, D) or (T, D) unbatched, or a PackedSequence
    output (T, B, dirs·H_out), zero past each sequence's length
    h_n (L·dirs, B, H_out) and, for LSTM, c_n (L·dirs, B, H), each sequence's state at its own last token

The differences from torch.nn that remain, each deliberate, are listed in docs/compatibility.md.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells import Cell, GRUCell, LSTMCell, RNNCell
from rnnkit.engine.registry import check_backend_name, resolve_backend
from rnnkit.lengths import check_lengths
from rnnkit.validation import DtypeMismatchError, ShapeError, check_positive_int, check_probability


class Recurrent(nn.Module):
    """A stack of ``num_layers`` recurrent layers (each optionally bidirectional) of one cell type.

    The positional arguments after ``cell`` are torch.nn.RNNBase's (``proj_size`` for cells that support it,
    ``device``/``dtype`` for the parameters); ``backend`` (a registered back-end name or ``"auto"``) and the
    ``cell_options`` passed to every cell are keyword-only.
    """

    def __init__(self, cell: type[Cell], input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None, *,
                 backend: str = "auto", **cell_options):
        super().__init__()
        if not (isinstance(cell, type) and issubclass(cell, Cell)):
            raise TypeError(f"cell must be a subclass of rnnkit.cells.Cell, got {cell!r}")
        self.cell_type = cell
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        for name, flag in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.dropout = check_probability("dropout", dropout, allow_one=True)
        if self.dropout > 0 and num_layers == 1:
            warnings.warn(f"dropout acts between layers; with num_layers=1 dropout={dropout} does nothing",
                          stacklevel=2)
        self.backend = self.check_backend(backend)
        self.num_directions = 2 if bidirectional else 1
        # A projection is a cell option (the cells own the layout); only a set one is passed, so the back ends
        # that check the options (native, fused) see it and the rest of the options stay as before.
        self.cell_options = dict(cell_options, **({"proj_size": proj_size} if proj_size != 0 else {}))
        self._build(cell, {"device": device, "dtype": dtype})
        self.proj_size = self.cell_for(0, 0).proj_size
        self.mode = self.cell_for(0, 0).mode
        self._state_sizes = self.cell_for(0, 0).state_sizes  # features of h (and c): every call checks hx
        self.reset_parameters()

    @classmethod
    def check_backend(cls, backend: str, form: str = "plain") -> str:
        """The back-end name, checked against the engine registry (``form``: the minimal layers' argument)."""
        return check_backend_name(backend)

    def _build(self, cell: type[Cell], factory: dict) -> None:
        """One cell per layer and direction, and their tensors registered under torch.nn's names."""
        self._names: dict[tuple[int, int], dict[str, str]] = {}  # params_for's cell name -> parameter name
        self._flat_weights_names: list[str] = []  # torch.nn's attribute: every parameter name in its order
        self._all_weights: list[list[str]] = []  # torch.nn's: the names per layer and direction
        cells: list[Cell] = []
        for k in range(self.num_layers):
            layer_input = self.input_size if k == 0 else cells[-1].output_size * self.num_directions
            for d in range(self.num_directions):
                c = cell(layer_input, self.hidden_size, self.bias, own_parameters=False, **self.cell_options)
                cells.append(c)
                self._names[(k, d)] = {name: self._param_name(name, k, d) for name in c.parameter_shapes()}
                for name, shape in c.parameter_shapes().items():
                    self.register_parameter(self._names[(k, d)][name], nn.Parameter(torch.empty(shape, **factory)))
                self._all_weights.append(list(self._names[(k, d)].values()))
                self._flat_weights_names.extend(self._names[(k, d)].values())
        # The cells hold configuration only, no tensors, and are not submodules: the state dict keeps torch.nn's
        # keys and the module tree (repr, named_modules) is torch.nn's.
        self._cell_list = tuple(cells)  # cell_for runs every call: a tuple, not a ModuleList (~5 µs an index)

    # -- parameters -------------------------------------------------------------
    @staticmethod
    def _param_name(name: str, k: int, d: int) -> str:
        return f"{name}_l{k}" + ("_reverse" if d == 1 else "")

    @property
    def cells(self) -> tuple[Cell, ...]:
        """Every layer's and direction's cell, layer-major (the configuration, not the weights)."""
        return self._cell_list

    def cell_for(self, k: int, d: int) -> Cell:
        return self._cell_list[k * self.num_directions + d]

    def params_for(self, k: int, d: int) -> dict[str, Tensor]:
        """The tensors layer k, direction d runs on, under the cell's own names."""
        # Straight from the parameter dict (Module.__getattr__ costs ~1 µs a name); getattr for anything
        # else registered under the name (a parametrization, a plain tensor).
        own = self._parameters
        return {name: own[full] if full in own else getattr(self, full) for name, full in self._names[(k, d)].items()}

    @property
    def _flat_weights(self) -> list[Tensor]:
        """torch.nn's attribute: the tensors in ``_flat_weights_names``' order, read now (parametrized or moved)."""
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """torch.nn's attribute: the tensors of each layer and direction, in torch.nn's order."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def reset_parameters(self) -> None:
        for k in range(self.num_layers):
            for d in range(self.num_directions):
                cell = self.cell_for(k, d)
                for name, tensor in self.params_for(k, d).items():
                    cell.init_parameter(name, tensor)

    def flatten_parameters(self) -> None:
        """Accepted for drop-in compatibility with torch.nn; nothing to do."""

    # -- running ----------------------------------------------------------------
    def _prepare(self, input, hx, lengths):
        """Validate and bring the call to time-major (T, B, D) with CPU lengths and a tuple hx.

        Exception classes are torch.nn's (see ``rnnkit.validation``), messages rnnkit's.
        """
        packed = isinstance(input, PackedSequence)
        unbatched = False
        if packed:
            if lengths is not None:
                raise ValueError("lengths must be None when input is a PackedSequence (it carries its own)")
            x, lengths = pad_packed_sequence(input)
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"input must be a Tensor or a PackedSequence, got {type(input).__name__}")
            if input.dim() == 2:
                if lengths is not None:
                    raise ValueError("lengths needs a batched (3-D) input; got an unbatched 2-D one")
                unbatched = True
                x = input.unsqueeze(1)
            elif input.dim() == 3:
                x = input.transpose(0, 1) if self.batch_first else input
            else:
                raise ValueError(f"input must be 3-D (batched) or 2-D (unbatched), got shape {tuple(input.shape)}")
        self._check_dtype(x)
        if x.shape[2] != self.input_size:
            raise ShapeError(f"input has {x.shape[2]} features but input_size={self.input_size}")
        if x.shape[0] == 0:
            # torch.nn raises RuntimeError here ("Expected sequence length to be larger than 0"); ShapeError is one
            raise ShapeError(f"input has zero time steps (shape {tuple(input.shape)}): sequences need at least one")
        steps, batch = x.shape[0], x.shape[1]
        lengths = check_lengths(lengths, batch, steps)
        hx = self._check_hx(hx, batch, x, unbatched)
        return x, hx, lengths, packed, unbatched

    def _check_dtype(self, x: Tensor) -> None:
        """The input's dtype against the weights' (autocast casts them itself, so not under autocast)."""
        first = self._flat_weights_names[0]
        weight = self._parameters[first] if first in self._parameters else getattr(self, first)
        if x.dtype == weight.dtype or torch.is_autocast_enabled(x.device.type):
            return
        if not x.dtype.is_floating_point:
            raise DtypeMismatchError(f"input must be a floating-point tensor, got dtype {x.dtype} "
                                     f"(the weights are {weight.dtype})")
        raise DtypeMismatchError(f"input has dtype {x.dtype} but the weights have {weight.dtype}: convert the "
                                 f"input (input.to({weight.dtype})) or the layer (layer.to({x.dtype}))")

    def _check_hx(self, hx, batch: int, x: Tensor, unbatched: bool):
        if hx is None:
            return None
        count = self.cell_type.state_count
        states = (hx,) if isinstance(hx, Tensor) else tuple(hx)
        what = "hx" if count == 1 else "hx=(h_0, c_0)"
        if len(states) != count or not all(isinstance(s, Tensor) for s in states):
            raise TypeError(f"{what} must be {count} tensor(s), got {type(hx).__name__} of {len(states)}")
        lead = self.num_layers * self.num_directions
        out = []
        for i, (s, size) in enumerate(zip(states, self._state_sizes, strict=True)):
            name = "hx" if count == 1 else ("h_0", "c_0")[i]
            expected = (lead, size) if unbatched else (lead, batch, size)
            if tuple(s.shape) != expected:
                raise ShapeError(f"{name} must have shape {expected}, got {tuple(s.shape)}")
            if s.dtype != x.dtype and not torch.is_autocast_enabled(x.device.type):
                raise DtypeMismatchError(f"{name} has dtype {s.dtype} but the input has {x.dtype}")
            if s.device != x.device:
                raise ValueError(f"{name} is on {s.device} but the input is on {x.device}")
            out.append(s.unsqueeze(1) if unbatched else s)
        return tuple(out)

    def forward(self, input, hx=None, lengths=None):
        """Run the stack; see the module docstring for shapes. ``lengths`` may be in any order."""
        x, hx, lengths, packed, unbatched = self._prepare(input, hx, lengths)
        backend = resolve_backend(self.backend, self, x, lengths)
        out, states = backend.run(self, x, hx, lengths)
        return self._finish(input, out, states, lengths, packed, unbatched)

    def _finish(self, input, out, states, lengths, packed, unbatched):
        if packed:
            order = input.sorted_indices
            if order is not None:
                out, lengths = out.index_select(1, order), lengths[order.cpu()]
            data = pack_padded_sequence(out, lengths, enforce_sorted=True)
            out = PackedSequence(data.data, data.batch_sizes, input.sorted_indices, input.unsorted_indices)
        elif unbatched:
            out = out.squeeze(1)
            states = tuple(s.squeeze(1) for s in states)
        elif self.batch_first:
            out = out.transpose(0, 1)
        return out, (states[0] if len(states) == 1 else states)

    def trace(self, input, hx=None, lengths=None):
        """Run on the reference back end and record every step; see ``rnnkit.layers.trace``."""
        from rnnkit.layers.trace import run_trace

        return run_trace(self, input, hx, lengths)

    def __prepare_scriptable__(self):
        """``torch.jit.script``: torch.nn's own module sharing these parameters, or a clear error (see ``script``)."""
        from rnnkit.layers.script import scriptable_layer

        return scriptable_layer(self)

    def extra_repr(self) -> str:
        """torch.nn's repr, then the rnnkit-only options that are set (and the cell of a generic ``Recurrent``)."""
        s = f"{self.input_size}, {self.hidden_size}"
        if type(self) is Recurrent:
            s = f"{self.cell_type.__name__}, " + s
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s + "".join(f", {k}={v!r}" for k, v in self.rnnkit_options().items())

    def rnnkit_options(self) -> dict:
        """The options torch.nn's module lacks that this layer sets: the back end and the cell options."""
        shown_by_torch = set() if type(self) is Recurrent else {"nonlinearity"}
        options = {k: v for k, v in self.cell_options.items() if k != "proj_size" and k not in shown_by_torch}
        return ({"backend": self.backend} if self.backend != "auto" else {}) | options


def _refuse_proj_size(cls: str, cell_options: dict) -> None:
    # torch.nn.RNN/GRU accept **kwargs only to refuse proj_size with this error.
    if "proj_size" in cell_options:
        raise ValueError(f"proj_size argument is only supported for LSTM, not {cls}")


class RNN(Recurrent):
    """Drop-in for ``torch.nn.RNN``: a stack of the lesson's simple cells (tanh or relu)."""

    cell_class = RNNCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None, *, backend: str = "auto", **cell_options):
        _refuse_proj_size("RNN", cell_options)
        super().__init__(self.cell_class, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, backend=backend, nonlinearity=nonlinearity, **cell_options)
        self.nonlinearity = nonlinearity


class LSTM(Recurrent):
    """Drop-in for ``torch.nn.LSTM``: returns ``(output, (h_n, c_n))``; ``proj_size`` as torch.nn's."""

    cell_class = LSTMCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, backend: str = "auto", **cell_options):
        super().__init__(self.cell_class, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device, dtype, backend=backend, **cell_options)


class GRU(Recurrent):
    """Drop-in for ``torch.nn.GRU``."""

    cell_class = GRUCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, backend: str = "auto", **cell_options):
        _refuse_proj_size("GRU", cell_options)
        super().__init__(self.cell_class, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, backend=backend, **cell_options)
