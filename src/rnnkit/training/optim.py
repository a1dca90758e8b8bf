"""AdamW with weight decay only where it regularises: the weight matrices.

Decay pulls parameters towards zero. That is the intended prior for the input,
recurrent and output weight matrices, but it does harm elsewhere:

* biases and normalisation gains/shifts (any parameter with fewer than 2
  dimensions) set offsets and scales, where zero is not a sensible prior (a
  LayerNorm gain decayed towards 0 switches the layer off);
* embedding tables get a gradient only for the rows of tokens in the batch, but
  decoupled decay shrinks *every* row at every step, so rare words fade away
  just for being rare.

A weight tied between an embedding and an output layer counts as an embedding.

A table built with ``sparse=True`` gets a group of its own, ``sparse``, updated lazily (``sparse.py``).
"""

from __future__ import annotations

from torch import nn
from torch.optim import AdamW, Optimizer

from rnnkit.training.config import TrainConfig
from rnnkit.training.sparse import SplitAdam

# Module types whose parameters are lookup tables rather than linear maps.
EMBEDDING_TYPES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split ``model``'s trainable parameters into a decayed and a non-decayed AdamW group (and ``sparse`` ones
    for tables with sparse gradients, also not decayed, one per ``lr_scale`` those tables ask for).

    Each parameter appears once even when shared between modules (tied weights).
    Empty groups are dropped.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    embedding_ids = {
        id(parameter)
        for module in model.modules() if isinstance(module, EMBEDDING_TYPES)
        for parameter in module.parameters(recurse=False)
    }
    # A sparse table may ask for a multiple of the base rate (``lr_scale``, e.g. the n-gram path's).
    sparse_scale = {
        id(parameter): float(getattr(module, "lr_scale", 1.0))
        for module in model.modules() if isinstance(module, EMBEDDING_TYPES) and module.sparse
        for parameter in module.parameters(recurse=False)
    }
    decay, no_decay, sparse = [], [], {}
    # model.parameters() already yields a shared parameter only once.
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        if id(parameter) in sparse_scale:
            sparse.setdefault(sparse_scale[id(parameter)], []).append(parameter)
        elif parameter.ndim < 2 or id(parameter) in embedding_ids:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
        *({"params": params, "weight_decay": 0.0, "name": "sparse", "lr_scale": scale}
          for scale, params in sorted(sparse.items())),
    ]
    return [group for group in groups if group["params"]]


def make_optimizer(model: nn.Module, config: TrainConfig) -> Optimizer:
    """AdamW at ``config.lr`` with ``config.weight_decay`` on weight matrices only (see module docstring); with
    sparse tables, a ``SplitAdam`` that updates their rows lazily beside it, at ``lr_scale`` times the rate."""
    groups = parameter_groups(model, config.weight_decay)
    if not groups:
        raise ValueError(f"model {type(model).__name__} has no trainable parameters (all requires_grad=False?)")
    for group in groups:
        group["lr"] = config.lr * group.get("lr_scale", 1.0)
    sparse = [group for group in groups if group["name"] == "sparse"]
    if sparse:
        return SplitAdam([group for group in groups if group["name"] != "sparse"], sparse, lr=config.lr)
    return AdamW(groups, lr=config.lr)
