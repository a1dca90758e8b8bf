"""The stack structure every loop-based back end shares: layers, directions, dropout.

A back end supplies ``run_direction``, which runs one layer in one direction over a
time-major (T, B, F) input whose sequences all start at step 0, and returns its
(T, B, H) outputs (zero past each length) and the final state tuple read at each
sequence's own last step. The reverse direction is handled here: its input is
reversed within each sequence's length, so the recurrence starts at each
sequence's own last token, and its outputs are reversed back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.lengths import reverse_padded

RunDirection = Callable[..., tuple[Tensor, tuple[Tensor, ...]]]


def run_stack(layer, x: Tensor, hx, lengths: Tensor | None, run_direction: RunDirection, recorder=None,
              dropout: Callable[[Tensor], Tensor] | None = None):
    """Run every layer and direction of ``layer``; see the module docstring.

    ``dropout`` replaces the plain ``F.dropout`` between layers (a back end whose rows are reordered draws
    the mask in the caller's order with it).
    """
    finals: list[tuple[Tensor, ...]] = []
    dirs = layer.num_directions
    for k in range(layer.num_layers):
        outputs = []
        for d in range(dirs):
            index = k * dirs + d
            h0 = None if hx is None else tuple(s[index] for s in hx)
            x_d = x if d == 0 else reverse_padded(x, lengths)
            record = None if recorder is None else recorder(k, d)
            out, final = run_direction(layer, k, d, x_d, h0, lengths, record)
            outputs.append(out if d == 0 else reverse_padded(out, lengths))
            finals.append(final)
        x = outputs[0] if dirs == 1 else torch.cat(outputs, dim=2)
        if layer.dropout > 0 and layer.training and k < layer.num_layers - 1:
            x = F.dropout(x, layer.dropout, training=True) if dropout is None else dropout(x)
    count = layer.cell_type.state_count
    if len(finals) == 1:  # one layer, one direction: a view, not a copy
        return x, tuple(finals[0][i].unsqueeze(0) for i in range(count))
    states = tuple(torch.stack([f[i] for f in finals]) for i in range(count))
    return x, states
