r"""Gradients with a graph for the fused plain cells: the recurrence recomputed in torch ops, then differentiated.

The kernels' backward gives a gradient with no graph behind it. When a backward is itself recorded
(``torch.autograd.grad(..., create_graph=True)`` for a gradient penalty, ``torch.func.grad``, ``gradgradcheck``),
the fused back end's backward calls ``gradients`` instead: it runs the layer again through the cell equations
(those of ``recurrence``, torch.nn's) as ordinary torch ops from the very tensors the forward got, and takes
their gradient with ``create_graph=True``, so the result has a graph and second derivatives equal torch.nn's.
It costs a reference-speed forward and backward: only calls that ask for a higher-order gradient pay it.

Rows follow the kernels' layout (``recurrence``): row r of block c runs at step t while its index in the block
is below ``batch_sizes[c, t]``; past that its state is held and its output is zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.engine.fused.contract import KINDS


def active(batch_sizes: Tensor, starts: Tensor, steps: int) -> Tensor:
    """(T, B, 1) bool: whether each row runs at each step (False from T_run on)."""
    chunks, run = batch_sizes.shape
    sizes = starts[1:] - starts[:-1]
    block = torch.repeat_interleave(torch.arange(chunks), sizes)
    index = torch.arange(int(starts[-1])) - starts[block]
    running = index.unsqueeze(0) < batch_sizes[block].t()  # (T_run, B)
    if run < steps:
        running = torch.cat([running, running.new_zeros(steps - run, running.shape[1])])
    return running.unsqueeze(2)


def _step(kind: int, xp_t: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor, b_hh: Tensor | None):
    a = F.linear(h, w_hh, b_hh)
    if kind == KINDS["lstm"]:
        i, f, g, o = (xp_t + a).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    if kind == KINDS["gru"]:
        x_r, x_z, x_n = xp_t.chunk(3, dim=1)
        a_r, a_z, a_n = a.chunk(3, dim=1)
        r, z = torch.sigmoid(x_r + a_r), torch.sigmoid(x_z + a_z)
        n = torch.tanh(x_n + r * a_n)
        return (1 - z) * n + z * h, None
    v = xp_t + a
    return (torch.tanh(v) if kind == KINDS["tanh"] else torch.relu(v)), None


def recompute(kind: int, layout: tuple[Tensor | None, Tensor | None], xp: Tensor, h0: Tensor, c0: Tensor | None,
              w_hh: Tensor, b_hh: Tensor | None) -> tuple[Tensor, ...]:
    """``(out, h_T[, c_T])`` of the kernels' forward, as differentiable torch ops (layout None: all rows run)."""
    if layout[0] is None:
        running = torch.ones(xp.shape[0], xp.shape[1], 1, dtype=torch.bool)
    else:
        running = active(*layout, xp.shape[0])
    h, c, outs = h0, c0, []
    for t in range(xp.shape[0]):
        h_new, c_new = _step(kind, xp[t], h, c, w_hh, b_hh)
        on = running[t]
        outs.append(torch.where(on, h_new, torch.zeros_like(h_new)))
        h = torch.where(on, h_new, h)
        c = None if c is None else torch.where(on, c_new, c)
    out = torch.stack(outs)
    return (out, h) if c is None else (out, h, c)


def gradients(kind: int, layout: tuple[Tensor | None, Tensor | None], inputs: dict[str, Tensor | None],
              grads: tuple[Tensor | None, ...], needed: dict[str, bool]) -> dict[str, Tensor | None]:
    """The gradient of each input in ``needed`` (None where not needed), with a graph.

    ``inputs``: either ``x, w_ih, bias`` (the projection is recomputed from them) or ``xp``, and
    ``h0, c0, w_hh, b_hh``; ``grads``: the gradients of ``(out, h_T[, c_T])``.
    """
    with torch.enable_grad():
        xp = inputs["xp"] if "xp" in inputs else F.linear(inputs["x"], inputs["w_ih"], inputs["bias"])
        outputs = recompute(kind, layout, xp, inputs["h0"], inputs["c0"], inputs["w_hh"], inputs["b_hh"])
        wanted = [name for name, need in needed.items() if need and inputs[name] is not None]
        pairs = [(o, g) for o, g in zip(outputs, grads, strict=False) if g is not None and o.requires_grad]
        found = torch.autograd.grad([o for o, _ in pairs], [inputs[n] for n in wanted], [g for _, g in pairs],
                                    create_graph=True, allow_unused=True) if wanted and pairs else []
    got = dict(zip(wanted, found, strict=True))
    return {name: got.get(name) for name in needed}
