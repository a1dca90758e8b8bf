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
"""

from __future__ import annotations

from torch import nn
from torch.optim import AdamW

from rnnkit.training.config import TrainConfig

# Module types whose parameters are lookup tables rather than linear maps.
EMBEDDING_TYPES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def _embedding_ids(model: nn.Module) -> set[int]:
    return {id(parameter) for module in model.modules() if isinstance(module, EMBEDDING_TYPES)
            for parameter in module.parameters(recurse=False)}


def _split(parameters, embedding_ids: set[int], weight_decay: float, name: str = "", **extra) -> list[dict]:
    """The decayed and the non-decayed AdamW group of ``parameters`` (empty ones dropped)."""
    decay, no_decay = [], []
    for parameter in parameters:
        if not parameter.requires_grad:
            continue
        if parameter.ndim < 2 or id(parameter) in embedding_ids:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": f"{name}decay", **extra},
        {"params": no_decay, "weight_decay": 0.0, "name": f"{name}no_decay", **extra},
    ]
    return [group for group in groups if group["params"]]


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split ``model``'s trainable parameters into a decayed and a non-decayed AdamW group.

    Each parameter appears once even when shared between modules (tied weights).
    Empty groups are dropped.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    # model.parameters() already yields a shared parameter only once.
    return _split(model.parameters(), _embedding_ids(model), weight_decay)


def discriminative_groups(model: nn.Module, layers: list[list[nn.Parameter]], lr: float, weight_decay: float,
                          factor: float) -> list[dict]:
    """AdamW groups for ``layers`` (the top layer group first): group k gets ``lr / factor**k``.

    ULMFiT's discriminative fine-tuning (Howard & Ruder 2018): the layers nearest the input hold the most general
    features and move least. Each layer group is split into decayed and non-decayed parameters as above; every
    trainable parameter of ``model`` must be in exactly one layer group.
    """
    seen: set[int] = set()
    for layer in layers:
        for parameter in layer:
            if id(parameter) in seen:
                raise ValueError("a parameter is in two layer groups")
            seen.add(id(parameter))
    missing = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if missing:
        raise ValueError(f"parameters in no layer group: {missing}")
    embedding_ids = _embedding_ids(model)
    return [group for depth, layer in enumerate(layers)
            for group in _split(layer, embedding_ids, weight_decay, f"layer{depth}_", lr=lr / factor ** depth)]


def make_optimizer(model: nn.Module, config: TrainConfig, groups: list[dict] | None = None) -> AdamW:
    """AdamW at ``config.lr`` with ``config.weight_decay`` on weight matrices only (see module docstring).

    ``groups``: parameter groups of one's own (e.g. ``discriminative_groups``) instead of the two default ones."""
    groups = parameter_groups(model, config.weight_decay) if groups is None else groups
    if not groups:
        raise ValueError(f"model {type(model).__name__} has no trainable parameters (all requires_grad=False?)")
    return AdamW(groups, lr=config.lr)
