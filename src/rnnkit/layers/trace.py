"""Per-step states and gates, for inspection and visualisation.

``layer.trace(x, hx=None, lengths=None)`` runs the reference back end and returns a
``StateTrace``: the usual ``output`` and final ``state``, plus, for every layer k and
direction d, ``steps[k][d]``, a dict of (B, T, ·) tensors, zero past each length:

    "h"             hidden state after each step (every cell)
    "c"             cell state (LSTM)
    the cell's own  what its ``step`` records, declared in its ``trace_series``: "i","f","g","o" LSTM gates;
                    "r","z","n" GRU gates; "pre" the simple RNN's pre-activation; "z" / "f","i" and "cand" the
                    minimal cells' gates and candidate

Time runs forward in every tensor, also for the reverse direction (its step t is
the state after reading token t, coming from the end), so tokens and columns line up.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from rnnkit.cells import BUILT_IN_CELLS
from rnnkit.engine.reference import REFERENCE
from rnnkit.lengths import reverse_padded

# The series the layer records for every cell (the reference back end writes them); the rest are the cells'.
STATE_SERIES = {"h": "hidden state", "c": "cell state"}


def gather_series(cells) -> dict[str, str]:
    """Every series a trace of these cells can hold, name → what it is: the states first, then each cell's."""
    found = dict(STATE_SERIES)
    for cell in cells:
        for name, text in cell.trace_series.items():
            if found.setdefault(name, text) != text:
                raise ValueError(f"{cell.__name__}.trace_series calls {name!r} {text!r}, another cell calls it "
                                 f"{found[name]!r}: one name must mean one thing")
    return found


# What ``trace`` can return for the built-in cells: the names ``/v1/inspect`` accepts and the explorer shows.
SERIES = gather_series(BUILT_IN_CELLS)


@dataclass
class StateTrace:
    output: object
    state: object
    steps: list[list[dict[str, Tensor]]]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        k, d = key
        return self.steps[k][d]


def run_trace(layer, input, hx=None, lengths=None) -> StateTrace:
    x, hx_t, lengths_t, packed, unbatched = layer._prepare(input, hx, lengths)
    steps: list[list[dict[str, Tensor]]] = [[{} for _ in range(layer.num_directions)]
                                            for _ in range(layer.num_layers)]
    out, states = REFERENCE.run(layer, x, hx_t, lengths_t, recorder=lambda k, d: steps[k][d])
    for k in range(layer.num_layers):
        if layer.num_directions == 2:
            # The reverse direction recorded in its own (reversed) time; put it back in token order.
            rec = steps[k][1]
            for name, series in rec.items():
                rec[name] = reverse_padded(series.transpose(0, 1), lengths_t).transpose(0, 1)
    output, state = layer._finish(input, out, states, lengths_t, packed, unbatched)
    return StateTrace(output, state, steps)
