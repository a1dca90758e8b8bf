"""A batch of zero sequences, answered as torch.nn answers it, whatever the back end.

torch.nn returns an empty output (T, 0, dirs·H) and empty final states (L·dirs, 0, H) for a batch of zero
sequences, with gradients that are zero (not None) for every weight and the input. Kernels that split rows
across threads or pack a batch have nothing to split, so ``registry`` sends such a call here, past any back
end, forced or not. It runs the reference back end over the first step only (every step of an empty batch is
the same empty computation) and repeats that step's empty output T times: the weights enter the graph as
torch.nn's do, at the cost of one step. ``lengths`` (necessarily empty) carry nothing.
"""

from __future__ import annotations

from torch import Tensor


class EmptyBatch:
    """Answers an empty batch with ``reference`` (the registry's reference back end) over one step."""

    name = "empty"
    autotune = False

    def __init__(self, reference):
        self.reference = reference

    def unsupported(self, layer, x: Tensor, lengths: Tensor | None) -> str | None:
        return None if x.shape[1] == 0 else "the batch is not empty"

    def run(self, layer, x: Tensor, hx, lengths: Tensor | None):
        out, states = self.reference.run(layer, x[:1], hx, None)
        return out.expand(x.shape[0], *out.shape[1:]), states

