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


def _embedding_ids(model: nn.Module) -> set[int]:
    return {id(parameter) for module in model.modules() if isinstance(module, EMBEDDING_TYPES)
            for parameter in module.parameters(recurse=False)}


def _sparse_scales(model: nn.Module) -> dict[int, float]:
    """Tables with sparse gradients, each with the multiple of the base rate it asks for (``lr_scale``)."""
    return {id(parameter): float(getattr(module, "lr_scale", 1.0))
            for module in model.modules() if isinstance(module, EMBEDDING_TYPES) and module.sparse
            for parameter in module.parameters(recurse=False)}


def _split(parameters, embedding_ids: set[int], sparse_scales: dict[int, float], weight_decay: float,
           name: str = "", **extra) -> list[dict]:
    """The decayed, the non-decayed and the sparse groups (one per ``lr_scale``) of ``parameters``, empty ones
    dropped."""
    decay, no_decay, sparse = [], [], {}
    for parameter in parameters:
        if not parameter.requires_grad:
            continue
        if id(parameter) in sparse_scales:
            sparse.setdefault(sparse_scales[id(parameter)], []).append(parameter)
        elif parameter.ndim < 2 or id(parameter) in embedding_ids:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay, "name": f"{name}decay", **extra},
        {"params": no_decay, "weight_decay": 0.0, "name": f"{name}no_decay", **extra},
        *({"params": params, "weight_decay": 0.0, "name": f"{name}sparse", "sparse": True, "lr_scale": scale,
           **extra} for scale, params in sorted(sparse.items())),
    ]
    return [group for group in groups if group["params"]]


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split ``model``'s trainable parameters into a decayed and a non-decayed AdamW group (and ``sparse`` ones
    for tables with sparse gradients, also not decayed, one per ``lr_scale`` those tables ask for).

    Each parameter appears once even when shared between modules (tied weights).
    Empty groups are dropped.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    # model.parameters() already yields a shared parameter only once.
    return _split(model.parameters(), _embedding_ids(model), _sparse_scales(model), weight_decay)


def discriminative_groups(model: nn.Module, layers: list[list[nn.Parameter]], lr: float, weight_decay: float,
                          factor: float) -> list[dict]:
    """AdamW groups for ``layers`` (the top layer group first): group k gets ``lr / factor**k``.

    ULMFiT's discriminative fine-tuning (Howard & Ruder 2018): the layers nearest the input hold the most general
    features and move least. Each layer group is split into decayed, non-decayed and sparse parameters as above
    (a sparse table's group gets its ``lr_scale`` times the layer group's rate); every trainable parameter of
    ``model`` must be in exactly one layer group.
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
    embedding_ids, sparse_scales = _embedding_ids(model), _sparse_scales(model)
    return [group for depth, layer in enumerate(layers)
            for group in _split(layer, embedding_ids, sparse_scales, weight_decay, f"layer{depth}_",
                                lr=lr / factor ** depth)]


def make_optimizer(model: nn.Module, config: TrainConfig, groups: list[dict] | None = None) -> Optimizer:
    """AdamW at ``config.lr`` with ``config.weight_decay`` on weight matrices only (see module docstring); with
    sparse tables, a ``SplitAdam`` that updates their rows lazily beside it, at ``lr_scale`` times the rate.

    ``groups``: parameter groups of one's own (e.g. ``discriminative_groups``, each with its ``lr``) instead of
    the default ones."""
    groups = parameter_groups(model, config.weight_decay) if groups is None else groups
    if not groups:
        raise ValueError(f"model {type(model).__name__} has no trainable parameters (all requires_grad=False?)")
    # New dicts: the caller's groups are not changed (a second call must not apply lr_scale twice).
    groups = [{**group, "lr": group.get("lr", config.lr) * group.get("lr_scale", 1.0)} for group in groups]
    sparse = [group for group in groups if group.get("sparse")]
    if sparse:
        return SplitAdam([group for group in groups if not group.get("sparse")], sparse, lr=config.lr)
    return AdamW(groups, lr=config.lr)
