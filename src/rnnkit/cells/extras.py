r"""Cell extras that torch.nn lacks: layer normalisation inside the cell, recurrent dropout, zoneout.

They are cell options (``rnnkit.LSTM(..., layer_norm=True, recurrent_dropout=0.25, zoneout=0.1)``) that
every cell class accepts through ``Cell.__init__``; the cells call the helpers here from ``step``.

Layer normalisation (Ba, Kiros & Hinton 2016), LSTM and GRU only. Each projection is normalised over its
G·H features before the biases are added, and the LSTM also normalises the cell state before the output::

    LN(v) = γ ⊙ (v - mean(v)) / sqrt(var(v) + ε) + β          per row, over the last dimension
    LSTM:  z = LN_ih(W_ih x) + LN_hh(W_hh ĥ) + b_ih + b_hh;  c = f⊙c_prev + i⊙g;  h = o⊙tanh(LN_c(c))
    GRU:   a_x = LN_ih(W_ih x) + b_ih;  a_h = LN_hh(W_hh ĥ) + b_hh;  gates as in GRUCell from a_x and a_h

    parameters ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias (G·H,), LSTM also ln_c_weight, ln_c_bias (H,)
    initialised to γ = 1, β = 0.

Recurrent (variational) dropout (Gal & Ghahramani 2016): the previous state entering the recurrent matmul
is ĥ = h_prev ⊙ m, with one mask m (B, H) per sequence, drawn once per forward call and kept for every
step, m = Bernoulli(1 - p) / (1 - p). Only the recurrent matmul sees it (not GRU's z⊙h_prev path, not c).
In eval mode ĥ = h_prev.

Zoneout (Krueger et al. 2017): each unit keeps its previous value with probability p at every step::

    h_t = h̃_t + d_t ⊙ (h_{t-1} - h̃_t)      (LSTM: the same for c with its own mask)

with d_t (B, H) Bernoulli(p) per step in training and the expectation d_t = p in eval mode.

Masks are drawn by ``sample_masks`` for a whole sequence at once (so every back end draws the same
numbers in the same order from the same seed) and handed to ``step`` in its parameter dict under the
keys ``recurrent_mask`` (B, H), ``zoneout_h`` and ``zoneout_c`` (B, H) for the current step.

Shape legend: B batch, H hidden, G gates, T steps.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.validation import check_probability

EPS = 1e-5


def configure(cell, layer_norm, recurrent_dropout, zoneout) -> None:
    """Validate the extras' arguments and store them on ``cell``."""
    if not isinstance(layer_norm, bool):
        raise TypeError(f"layer_norm must be a bool, got {layer_norm!r}")
    if layer_norm and cell.gates == 1:
        raise ValueError(f"layer_norm is available for LSTM and GRU cells, not {type(cell).__name__}")
    cell.layer_norm = layer_norm
    cell.recurrent_dropout = check_probability("recurrent_dropout", recurrent_dropout)
    cell.zoneout = check_probability("zoneout", zoneout)


def has_extras(cell) -> bool:
    return cell.layer_norm or cell.recurrent_dropout > 0 or cell.zoneout > 0


def shapes(cell) -> dict[str, tuple[int, ...]]:
    """The LayerNorm parameters' names and shapes (empty without layer_norm)."""
    if not cell.layer_norm:
        return {}
    gh, hidden = cell.gates * cell.hidden_size, cell.hidden_size
    out = {"ln_ih_weight": (gh,), "ln_ih_bias": (gh,), "ln_hh_weight": (gh,), "ln_hh_bias": (gh,)}
    if cell.state_count == 2:
        out.update({"ln_c_weight": (hidden,), "ln_c_bias": (hidden,)})
    return out


def init(name: str, tensor: Tensor) -> bool:
    """γ = 1, β = 0 for the LayerNorm tensors; returns False for any other name."""
    if not name.startswith("ln_"):
        return False
    with torch.no_grad():
        tensor.fill_(1.0 if name.endswith("_weight") else 0.0)
    return True


def norm(v: Tensor, p: dict, which: str) -> Tensor:
    """LN over the last dimension with the γ, β named ``ln_{which}_weight`` / ``ln_{which}_bias``."""
    return F.layer_norm(v, (v.shape[-1],), p[f"ln_{which}_weight"], p[f"ln_{which}_bias"], EPS)


def sample_masks(cell, steps: int, batch: int, like: Tensor, training: bool) -> dict[str, Tensor]:
    """Every random mask one sequence needs, drawn in a fixed order: recurrent, zoneout h, zoneout c.

    ``recurrent_mask`` (B, H) scaled by 1/(1-p); ``zoneout_h``/``zoneout_c`` (T, B, H) of 0/1 (1: keep the
    previous value). Nothing is drawn in eval mode or for an option that is off.
    """
    if not training:
        return {}
    hidden, masks = cell.hidden_size, {}
    if cell.recurrent_dropout > 0:
        keep = 1.0 - cell.recurrent_dropout
        masks["recurrent_mask"] = like.new_empty(batch, hidden).bernoulli_(keep).div_(keep)
    if cell.zoneout > 0:
        masks["zoneout_h"] = like.new_empty(steps, batch, hidden).bernoulli_(cell.zoneout)
        if cell.state_count == 2:
            masks["zoneout_c"] = like.new_empty(steps, batch, hidden).bernoulli_(cell.zoneout)
    return masks


def at_step(masks: dict[str, Tensor], t: int) -> dict[str, Tensor]:
    """The masks one step reads: the recurrent mask as is, the zoneout masks' slice t."""
    return {k: (v if k == "recurrent_mask" else v[t]) for k, v in masks.items()}


def recurrent_input(h_prev: Tensor, p: dict) -> Tensor:
    """ĥ = h_prev ⊙ m when a recurrent-dropout mask is present."""
    mask = p.get("recurrent_mask")
    return h_prev if mask is None else h_prev * mask


def zone(cell, new: Tensor, prev: Tensor, p: dict, which: str) -> Tensor:
    """Zoneout: new + d ⊙ (prev - new), d the step's mask in training or the rate p in eval."""
    if cell.zoneout == 0:
        return new
    d = p.get(f"zoneout_{which}")
    if d is None:
        d = cell.zoneout
    return new + d * (prev - new)
