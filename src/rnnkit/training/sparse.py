"""Lazy updates for lookup tables whose gradient is sparse: the n-gram path's hashed table.

A table built with ``sparse=True`` (``nn.Embedding`` / ``nn.EmbeddingBag``) gets a sparse gradient holding
only the rows its batch looked up. AdamW cannot take one, and giving it the dense gradient instead means
updating every row of a table of a few hundred thousand rows at every step: on tweet-length batches that
update cost 3.7x the rest of the step. ``SplitAdam`` runs AdamW on the dense parameters and
``torch.optim.SparseAdam`` on the sparse tables, which updates the rows of the batch only ("lazy Adam": a row's
moments decay only at the steps that see it, and no row absent from the batch moves; the tables have no weight
decay, as ``optim.py`` explains). Both share one ``param_groups`` list, so one scheduler sets every group's rate,
and one state dict holds both parts, so a resumed run continues bit for bit.

``clip_grad_norm`` is ``torch.nn.utils.clip_grad_norm_`` that also counts sparse gradients (torch's has no norm
kernel for them): a sparse gradient is coalesced first, so a row looked up twice in a batch counts once, with
its summed gradient, exactly as in the dense gradient.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor
from torch.nn.utils import clip_grad_norm_
from torch.optim import AdamW, Optimizer, SparseAdam


class SplitAdam(Optimizer):
    """AdamW over the dense groups, SparseAdam over the ``sparse`` ones; one optimizer to the trainer.

    ``param_groups`` is the dense optimizer's groups followed by the sparse one's, the same dict objects, so a
    learning rate set on a group (by a scheduler) is the rate its part uses.
    """

    def __init__(self, dense_groups: list[dict], sparse_groups: list[dict], lr: float):
        if not sparse_groups:
            raise ValueError("SplitAdam needs at least one sparse parameter group (use AdamW otherwise)")
        self.dense = AdamW(dense_groups, lr=lr) if dense_groups else None
        # SparseAdam takes no weight decay: drop the key (0.0 by construction) rather than pass it.
        self.sparse = SparseAdam([{k: v for k, v in g.items() if k != "weight_decay"} for g in sparse_groups], lr=lr)
        # The base class adds no defaults ({}), so these dicts are kept as they are and shared with the parts.
        super().__init__(self._parts_groups(), {})

    def _parts_groups(self) -> list[dict]:
        return [group for part in self.parts() for group in part.param_groups]

    def parts(self) -> list[Optimizer]:
        return [part for part in (self.dense, self.sparse) if part is not None]

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("SplitAdam.step takes no closure")
        for part in self.parts():
            part.step()

    def state_dict(self) -> dict:
        return {"dense": self.dense.state_dict() if self.dense else None, "sparse": self.sparse.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        if set(state_dict) != {"dense", "sparse"}:
            raise ValueError(f"not a SplitAdam state (keys {sorted(state_dict)}): was the run saved with the "
                             "dense n-gram table of an earlier version?")
        if (state_dict["dense"] is None) != (self.dense is None):
            raise ValueError("SplitAdam state: the saved run and this model differ in having dense parameters")
        if self.dense is not None:
            self.dense.load_state_dict(state_dict["dense"])
        self.sparse.load_state_dict(state_dict["sparse"])
        # Loading gives each part new group dicts: share those again, or a rate the scheduler sets would not
        # reach the parts.
        self.param_groups = self._parts_groups()


def clip_grad_norm(parameters: Iterable[Tensor], max_norm: float) -> Tensor:
    """Scale the gradients so that their global L2 norm is at most ``max_norm``; return the norm before.

    With only dense gradients this is ``clip_grad_norm_`` itself (same result to the bit).
    """
    parameters = [p for p in parameters if p.grad is not None]
    if not any(p.grad.is_sparse for p in parameters):
        return clip_grad_norm_(parameters, max_norm)
    norms = []
    for p in parameters:
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            norms.append(torch.linalg.vector_norm(p.grad._values()))
        else:
            norms.append(torch.linalg.vector_norm(p.grad))
    total = torch.linalg.vector_norm(torch.stack(norms))
    # As torch's: a factor below 1 only, and 1e-6 keeps a zero norm from dividing by zero.
    factor = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for p in parameters:
        (p.grad._values() if p.grad.is_sparse else p.grad).mul_(factor)
    return total
