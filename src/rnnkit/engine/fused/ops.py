r"""The fused recurrence as PyTorch operators (``torch.ops.rnnkit.*``), for everything that is not plain eager.

``torch.compile`` (with or without ``fullgraph``), ``torch.export``, ``torch.jit.trace`` and ``torch.func`` see
two operators they understand instead of an opaque Python function:

    rnnkit::fused_recurrence(kind, batch_sizes?, starts?, padded, threads, units, xp, h0, c0?, w_hh, b_hh?, save)
        -> (out, h_T, c_T, cs, gates, hn)          (the last four empty where the kind has none, or not saved)
    rnnkit::fused_recurrence_backward(kind, batch_sizes?, starts?, padded, threads, d_out, d_hT, d_cT?, out, h0,
                                      cs?, c0?, gates?, hn?, w_hh) -> (d_xp, d_a, d_h0, d_c0)

Without ``batch_sizes``/``starts`` every row runs every step and the operator cuts the rows into blocks itself
from its input's shape when it runs: a traced or exported graph then serves any batch size and length, not only
the ones it was traced with.

each with a fake (meta) kernel giving its outputs' shapes, and the first with its derivative registered
(``torch.library.register_autograd``): δxp, δh0, δc0 from the second operator, δW_hh and δb_hh as matmuls
around it. Equations and layout: ``recurrence``. The input projection xp = x·W_ihᵀ + b stays outside, an
ordinary ``F.linear`` the tracer and autocast see. A recorded backward (``create_graph``, ``torch.func.grad``)
differentiates the equations instead (``second_order``), as the eager path does.

``watch.watched()`` says whether a call goes through these operators: when compiling, tracing or exporting, under a
``torch.func`` transform, a dispatch or function mode, or for any tensor subclass. A plain eager call takes the
direct path (``recurrence.Recurrence`` and ``infer``): the dispatcher round trip would cost more than the whole
batch-1 step loop, and the buffers it keeps between calls cannot be an operator's outputs. Both paths run the
same kernels through the same checked boundary.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.engine.fused import layout as rows
from rnnkit.engine.fused import recurrence, second_order
from rnnkit.engine.fused.contract import GATES, KINDS, SAVED


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


def _opt(t: Tensor | None) -> Tensor | None:
    # An operator's optional output is an empty tensor: read back as absent.
    return None if t is None or (t.numel() == 0 and t.dim() == 1) else t


def _layout(batch_sizes: Tensor | None, starts: Tensor | None, like: Tensor) -> tuple[Tensor, Tensor]:
    """The given layout, or (none given) the even one for this many steps and rows, made now."""
    if batch_sizes is not None and starts is not None:
        return batch_sizes, starts
    return rows.layout(None, like.shape[0], like.shape[1])[1]


@torch.library.custom_op("rnnkit::fused_recurrence", mutates_args=(), device_types="cpu")
def fused_recurrence(kind: int, batch_sizes: Tensor | None, starts: Tensor | None, padded: bool, threads: int,
                     units: int, xp: Tensor, h0: Tensor, c0: Tensor | None, w_hh: Tensor, b_hh: Tensor | None,
                     save: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    results, saved = recurrence.forward(kind, _layout(batch_sizes, starts, xp), padded, threads, units, xp, h0, c0,
                                        w_hh, b_hh, save, over_xp=False)
    _, out, _, cs, _, gates, hn, _ = saved
    c_T = results[2] if len(results) > 2 else None
    if not save:
        gates = hn = None
    return tuple(_empty(xp) if t is None else t for t in (out, results[1], c_T, cs, gates, hn))


@fused_recurrence.register_fake
def _(kind, batch_sizes, starts, padded, threads, units, xp, h0, c0, w_hh, b_hh, save):
    steps, batch = xp.shape[0], xp.shape[1]
    hidden = w_hh.shape[1]
    lstm, gru = kind == KINDS["lstm"], kind == KINDS["gru"]
    seq = (steps, batch, hidden)
    kept = SAVED[kind] * hidden
    return (xp.new_empty(seq), xp.new_empty(batch, hidden),
            xp.new_empty(batch, hidden) if lstm else _empty(xp), xp.new_empty(seq) if lstm else _empty(xp),
            xp.new_empty(steps, batch, kept) if save and kept else _empty(xp),
            xp.new_empty(seq) if save and gru else _empty(xp))


@torch.library.custom_op("rnnkit::fused_recurrence_backward", mutates_args=(), device_types="cpu")
def fused_recurrence_backward(kind: int, batch_sizes: Tensor | None, starts: Tensor | None, padded: bool, threads: int,
                              d_out: Tensor, d_hT: Tensor, d_cT: Tensor | None, out: Tensor, h0: Tensor,
                              cs: Tensor | None, c0: Tensor | None, gates: Tensor | None, hn: Tensor | None,
                              w_hh: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    d_xp, d_a, d_h, d_c = recurrence.backward(kind, _layout(batch_sizes, starts, out), padded, threads, d_out, d_hT,
                                              d_cT, out, h0, cs, c0, gates, hn, w_hh, fresh=True)
    # An operator's outputs never alias each other: δa is δxp itself except for GRU.
    return d_xp, (d_a if d_a is not d_xp else _empty(d_xp)), d_h, (_empty(d_h) if d_c is None else d_c)


@fused_recurrence_backward.register_fake
def _(kind, batch_sizes, starts, padded, threads, d_out, d_hT, d_cT, out, h0, cs, c0, gates, hn, w_hh):
    seq_gh = (*out.shape[:2], w_hh.shape[0])
    return (out.new_empty(seq_gh), out.new_empty(seq_gh) if kind == KINDS["gru"] else _empty(out),
            h0.new_empty(h0.shape), h0.new_empty(h0.shape) if kind == KINDS["lstm"] else _empty(h0))


_INPUTS = ("kind", "batch_sizes", "starts", "padded", "threads", "units", "xp", "h0", "c0", "w_hh", "b_hh", "save")


def _setup_context(ctx, inputs, output):
    args = dict(zip(_INPUTS, inputs, strict=True))
    out, _, _, cs, gates, hn = output
    ctx.kind, ctx.padded, ctx.threads = args["kind"], args["padded"], args["threads"]
    ctx.lstm = args["kind"] == KINDS["lstm"]
    ctx.save_for_backward(args["xp"], args["h0"], args["c0"], args["w_hh"], args["b_hh"], args["batch_sizes"],
                          args["starts"], out, cs, gates, hn)
    ctx.mark_non_differentiable(*output[3:])


def _backward(ctx, d_out, d_hT, d_cT, *_saved_only):
    xp, h0, c0, w_hh, b_hh, batch_sizes, starts, out, cs, gates, hn = ctx.saved_tensors
    need = dict(zip(("xp", "h0", "c0", "w_hh", "b_hh"), ctx.needs_input_grad[6:11], strict=True))
    layout = (batch_sizes, starts)
    grads_out = (d_out, d_hT, d_cT if ctx.lstm else None)
    if torch.is_grad_enabled():
        # A recorded backward (create_graph, torch.func): the equations, differentiated with a graph.
        found = second_order.gradients(ctx.kind, layout, dict(xp=xp, h0=h0, c0=c0, w_hh=w_hh, b_hh=b_hh),
                                       grads_out, need)
    else:
        d_out, d_hT = _zeros_if_none(d_out, out), _zeros_if_none(d_hT, h0)
        d_cT = _zeros_if_none(d_cT, h0) if ctx.lstm else None
        d_xp, d_a, d_h, d_c = fused_recurrence_backward(
            ctx.kind, batch_sizes, starts, ctx.padded, ctx.threads, d_out, d_hT, d_cT, out, h0, _opt(cs), c0,
            _opt(gates), _opt(hn), w_hh)
        d_a = d_xp if ctx.kind != KINDS["gru"] else d_a
        run = out.shape[0] if batch_sizes is None else batch_sizes.shape[1]
        d_w, d_b = recurrence.weight_grads(d_a, h0, out, run, need["w_hh"],
                                           need["b_hh"] and b_hh is not None)
        found = dict(xp=d_xp, h0=d_h, c0=d_c if ctx.lstm else None, w_hh=d_w, b_hh=d_b)
    return (None,) * 6 + tuple(found[name] if need[name] else None for name in need) + (None,)


def _zeros_if_none(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad


fused_recurrence.register_autograd(_backward, setup_context=_setup_context)


class _Differentiable(torch.autograd.Function):
    """The operator with the same derivative, as a Function with ``setup_context``: ``torch.func`` accepts this
    (it refuses a custom operator's own autograd), the compiler and exporters trace through to the operator."""

    @staticmethod
    def forward(*args):
        return fused_recurrence(*args)

    setup_context = staticmethod(_setup_context)
    backward = staticmethod(_backward)


def run(kind: int, layout: tuple[Tensor, Tensor] | None, padded: bool, threads: int, units: int, xp: Tensor,
        h0: Tensor, c0: Tensor | None, w_hh: Tensor, b_hh: Tensor | None) -> tuple[Tensor, ...]:
    """``(out, h_T[, c_T])`` through the operator; the activations are kept only if a gradient may be asked.

    ``layout`` None: every row runs every step (the operator makes the layout itself, see the module)."""
    if kind == KINDS["gru"] and b_hh is None:
        b_hh = xp.new_zeros(GATES[kind] * w_hh.shape[1])
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (xp, h0, c0, w_hh, b_hh))
    # The operator itself wherever it can serve (its graph node is what tracing and export record); under a
    # torch.func transform, the Function that wraps it.
    call = _Differentiable.apply if torch._C._are_functorch_transforms_active() else fused_recurrence
    out, h_T, c_T, *_ = call(kind, *(layout or (None, None)), padded, threads, units, xp, h0, c0, w_hh, b_hh, save)
    return (out, h_T, c_T) if kind == KINDS["lstm"] else (out, h_T)
