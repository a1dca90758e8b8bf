"""MinGRU and MinLSTM layers: the minimal cells over whole sequences, parallel over time.

They take the other layers' arguments and keep their conventions (``Recurrent``'s validation, lengths in any
order, PackedSequence, unbatched input, h0 of (L·dirs, B, H), ``trace``, torch.nn-style parameter names
``weight_ih_l0``, ``bias_ih_l0_reverse``: no ``weight_hh``). Padding never changes a result: a row that has
ended holds its state, its outputs past the length are zero, and the reverse direction starts at its own
last token.

Back ends (``backend=``), chosen here rather than in the engine registry:
    "reference"  the cell's ``step`` in a Python loop over time (``rnnkit.engine.reference``): the ground truth,
                 and what ``trace`` runs
    "scan"       one matrix product for every step's projections, then the elementwise recurrence
                 h_t = a_t ⊙ h_(t-1) + b_t as a scan in PyTorch operators (``rnnkit.cells.linear_scan``:
                 pairwise/parallel, or a step loop on a CPU with wide steps), any device, with its adjoint
                 scan for the backward
    "log-scan"   the paper's log-space scan (logcumsumexp), for form="log" only
    "fused"      the projections as in "scan", then the gated recurrence, lengths included, in C++
                 (``rnnkit.engine.fused.gated_scan``: one pass forward and one back, vectorised along the units,
                 rows cut into blocks on torch's threads), a registered operator that torch.compile and export
                 see; CPU, float32 and float64
    "auto"       "fused" where it can run (the CPU, float32/float64, the kernels built), else "log-scan" for
                 form="log" off the CPU, else "scan" (see ``rnnkit.cells.minimal``). Forcing "fused" where it
                 cannot run raises an error that says why (e.g. the kernels failed to build: ``build.failure``).

Shapes as in ``rnnkit.layers.recurrent`` (batch_first=False): input (T, B, D), output (T, B, dirs·H),
h_n (L·dirs, B, H).
"""

from __future__ import annotations

from torch import Tensor

from rnnkit.cells import MinGRUCell, MinLSTMCell
from rnnkit.cells.minimal import MinimalCell, check_backend_for_form
from rnnkit.engine.fused import gated_scan
from rnnkit.engine.reference import REFERENCE
from rnnkit.engine.registry import refusal
from rnnkit.engine.stack import run_stack
from rnnkit.layers.recurrent import Recurrent
from rnnkit.validation import check_choice

BACKENDS = ("auto", "reference", "scan", "log-scan", "fused")


class ScanBackend:
    """Every layer and direction by the cells' ``run_sequence``, with the whole-sequence back end ``name``."""

    def __init__(self, name: str):
        self.name = name

    def _direction(self, layer, k: int, d: int, x: Tensor, h0, lengths: Tensor | None, record=None):
        cell = layer.cell_for(k, d)
        out, h_n = cell.run_sequence(x, None if h0 is None else h0[0], layer.params_for(k, d), lengths, self.name)
        return out, (h_n,)

    def run(self, layer, x, hx, lengths):
        return run_stack(layer, x, hx, lengths, self._direction)


class FusedBackend(ScanBackend):
    """Every layer and direction by the C++ gated scan on the cells' projections (``gated_scan``)."""

    def __init__(self):
        super().__init__("fused")

    def _direction(self, layer, k: int, d: int, x: Tensor, h0, lengths: Tensor | None, record=None):
        u, c = layer.cell_for(k, d).gated_inputs(x, layer.params_for(k, d))
        out, h_n = gated_scan.gated_scan(u, c, None if h0 is None else h0[0], lengths)
        return out, (h_n,)


_BY_NAME = {"reference": REFERENCE, "scan": ScanBackend("scan"), "log-scan": ScanBackend("log-scan"),
            "fused": FusedBackend()}


def resolve(backend: str, form: str, x: Tensor) -> str:
    """The back end ``backend`` names for an input ``x``: "auto" settled (see the module docstring)."""
    if backend == "fused":
        reason = gated_scan.unsupported(x)
        if reason is not None:
            raise refusal(backend, reason)
    if backend != "auto":
        return backend
    if gated_scan.unsupported(x) is None:
        return "fused"
    return "log-scan" if form == "log" and x.device.type != "cpu" else "scan"


class MinimalRecurrent(Recurrent):
    """A stack of minimal cells (``MinGRUCell``, ``MinLSTMCell``); arguments as ``Recurrent`` plus ``form``.

    ``form``: "plain" (the paper's minGRU/minLSTM) or "log" (the log-space, positive-valued form).
    ``backend``: one of ``BACKENDS`` (see the module docstring).
    """

    def __init__(self, cell: type[MinimalCell], input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, backend: str = "auto", form: str = "plain"):
        if not (isinstance(cell, type) and issubclass(cell, MinimalCell)):
            raise TypeError(f"cell must be a subclass of rnnkit.cells.minimal.MinimalCell, got {cell!r}")
        backend = self.check_backend(backend, form)
        # The engine registry's back ends do not know these cells: the choice is made here, in forward.
        super().__init__(cell, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype, backend="auto", form=form)
        self.backend = backend
        self.form = form

    @classmethod
    def check_backend(cls, backend: str, form: str = "plain") -> str:
        """One of ``BACKENDS``, and one that can run ``form`` (the log-scan runs the log form only)."""
        return check_backend_for_form(check_choice("backend", backend, BACKENDS), form)

    def forward(self, input, hx=None, lengths=None):
        """Run the stack; shapes as ``Recurrent.forward``. ``lengths`` may be in any order."""
        x, hx, lengths, packed, unbatched = self._prepare(input, hx, lengths)
        out, states = _BY_NAME[resolve(self.backend, self.form, x)].run(self, x, hx, lengths)
        return self._finish(input, out, states, lengths, packed, unbatched)


class MinGRU(MinimalRecurrent):
    """A stack of minGRU cells (``rnnkit.cells.MinGRUCell``); returns ``(output, h_n)`` like ``GRU``."""

    cell_class = MinGRUCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, backend: str = "auto", form: str = "plain"):
        super().__init__(self.cell_class, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype, backend=backend, form=form)


class MinLSTM(MinimalRecurrent):
    """A stack of minLSTM cells (``rnnkit.cells.MinLSTMCell``); returns ``(output, h_n)``: no cell state c."""

    cell_class = MinLSTMCell

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, backend: str = "auto", form: str = "plain"):
        super().__init__(self.cell_class, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype, backend=backend, form=form)
