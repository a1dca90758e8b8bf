r"""One layer, one direction of a plain cell through time, as a ``torch.autograd.Function``.

Forward (``kernels.cpp``), for t = 0..T-1 over the first ``n_t`` rows (the sequences still running)::

    a_t = h_{t-1}·W_hhᵀ                    one BLAS call (at 1-3 rows a hand loop) per step
    RNN:  h_t = σ(xp_t + a_t)
    LSTM: [i f g o] = [σ σ tanh σ](xp_t + a_t);  c_t = f⊙c_{t-1} + i⊙g;  h_t = o⊙tanh(c_t)
    GRU:  r, z = σ(xp_t + a_t + b_hh) (r, z blocks);  hn = a_n + b_hn;  n = tanh(xp_n + r⊙hn)
          h_t = (1 - z)⊙n + z⊙h_{t-1}

with xp = x·W_ihᵀ + b (all steps, one matmul by the caller; b = b_ih + b_hh for RNN and LSTM, b_ih for GRU).

Backward steps only the recurrence back through time (one BLAS call per step for δh_{t-1} = δa_t·W_hh),
storing the pre-activation gradients δxp (T, B, G·H); then

    δW_hh = Σ_t δa_tᵀ·h_{t-1}   one matmul over all steps      δb_hh = Σ_t δa_t (GRU only)

and the caller's autograd turns δxp into δx, δW_ih, δb with one matmul each.

Shapes: xp (T, B, G·H); h0, c0 (B, H); out (T, B, H), zero for rows past their length; finals (B, H) at each
row's last step. ``layout = (batch_sizes, starts)``: the rows are cut into C blocks (starts (C+1,) int64), each
run on its own thread; batch_sizes (C, T_run) int64, T_run ≤ T, counts the rows of each block still running at
each step (each block is sorted longest first, so they are its first rows). With one block (a tiny batch) the
forward can instead split the hidden units across ``units`` threads that meet after every step
(``kernels_forward.h``); the backward always runs by blocks of rows.

Second derivatives: when a backward is itself recorded (``create_graph=True``, ``torch.func``), the kernels'
gradient would have no graph, so that backward recomputes the layer through the same equations in torch ops
(``second_order``) and differentiates them instead: slower, never silently wrong.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.engine.fused import boundary, second_order
from rnnkit.engine.fused.buffers import projections, scratch
from rnnkit.engine.fused.build import load
from rnnkit.engine.fused.contract import GATES, KINDS, SAVED

__all__ = ["GATES", "KINDS", "SAVED", "Recurrence", "backward", "forward", "infer", "weight_grads"]


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _kernels(dtype: torch.dtype):
    lib = load()
    suffix = "f32" if dtype == torch.float32 else "f64"
    return getattr(lib, f"rk_forward_{suffix}"), getattr(lib, f"rk_backward_{suffix}")


def _kernel_dtype(t: Tensor, call: str) -> torch.dtype:
    if t.dtype not in (torch.float32, torch.float64):
        raise boundary.FusedBoundaryError(f"rnnkit's fused {call}: the kernels run float32 and float64, "
                                          f"got {t.dtype}")
    return t.dtype


# Below this size a fresh projection costs less than the pool's bookkeeping (~30 µs a batch-1 call, measured).
POOLED_BYTES = 1 << 20


def project(x: Tensor, w_ih: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """xp = x·W_ihᵀ + b (T, B, G·H): ``(xp, buffer)``, the pooled buffer to give back later (None: fresh)."""
    steps, batch, features = x.shape
    gh = w_ih.shape[0]
    if steps * batch * gh * x.element_size() < POOLED_BYTES:
        return F.linear(x, w_ih, bias), None
    buffer = projections.take(steps * batch * gh, x.dtype)
    xp = buffer[: steps * batch * gh].view(steps * batch, gh)
    x2 = x.reshape(steps * batch, features)
    if bias is None:
        torch.mm(x2, w_ih.t(), out=xp)
    else:
        torch.addmm(bias, x2, w_ih.t(), out=xp)
    return xp.view(steps, batch, gh), buffer


def infer(kind: int, layout: tuple[Tensor, Tensor], padded: bool, threads: int, units: int, x: Tensor,
          w_ih: Tensor, bias: Tensor | None, h0: Tensor, c0: Tensor | None, w_hh: Tensor, b_hh: Tensor | None):
    """A call nobody will differentiate: the projection and the loop, the projection's buffer kept for the next.

    ``autograd.Function.apply`` alone costs tens of µs, a third of a batch-1 call of 100 steps.
    """
    xp, buffer = project(x, w_ih, bias)
    try:
        results, _ = forward(kind, layout, padded, threads, units, xp, h0, c0, w_hh, b_hh, save=False)
    finally:
        if buffer is not None:
            projections.give(buffer)
    return results


def forward(kind: int, layout: tuple[Tensor, Tensor], padded: bool, threads: int, units: int, xp: Tensor,
            h0: Tensor, c0: Tensor | None, w_hh: Tensor, b_hh: Tensor | None, save: bool, over_xp: bool = True):
    """The forward kernel on the projection ``xp``: ``(out, h_T[, c_T])`` and what backward needs (``saved``).

    ``save`` keeps every step's gate activations for backward, by default written over ``xp`` (a scratch of
    this module's: each unit's xp is read before its gates are written), which spares a (T, B, G·H) buffer;
    ``over_xp=False`` writes them to a fresh one and leaves ``xp`` as it was (the operator's way: ``ops``).
    """
    steps, batch = xp.shape[0], xp.shape[1]
    hidden = w_hh.shape[1]
    batch_sizes, starts = layout
    boundary.check_layout(batch_sizes, starts, batch, steps)
    chunks, run = batch_sizes.shape
    split = chunks == 1 and units > 1
    # No-ops for the usual inputs (a parameter, the projection, a state slice): nothing is copied.
    xp, h0, w_hh = xp.contiguous(), h0.contiguous(), w_hh.contiguous()
    c0 = None if c0 is None else c0.contiguous()
    if b_hh is None and kind == KINDS["gru"]:
        b_hh = xp.new_zeros(w_hh.shape[0])  # a branch-free kernel loop vectorises; zeros cost nothing
    b_hh = None if b_hh is None else b_hh.contiguous()
    new = xp.new_zeros if padded or run < steps else xp.new_empty
    out = new(steps, batch, hidden)
    lstm = kind == KINDS["lstm"]
    cs = xp.new_empty(steps, batch, hidden) if lstm else None
    per_row = SAVED[kind] * hidden
    gates = None
    if per_row:
        gates = (xp if over_xp else xp.new_empty(steps, batch, per_row)) if save else xp.new_empty(1, batch, per_row)
    gru = kind == KINDS["gru"]
    hn = xp.new_empty((steps if save else 1), batch, hidden) if gru else None
    work = None if split else xp.new_empty(batch, GATES[kind] * hidden)  # split: each thread has its own
    h_T = xp.new_empty(batch, hidden)
    c_T = xp.new_empty(batch, hidden) if lstm else None
    dtype = _kernel_dtype(xp, "forward")
    gh, kept = GATES[kind] * hidden, steps if save else 1
    boundary.check("forward", dtype, xp=(xp, (steps, batch, gh)), h0=(h0, (batch, hidden)),
                   c0=(c0, (batch, hidden)), w_hh=(w_hh, (gh, hidden)), b_hh=(b_hh, (gh,)),
                   gates=(gates, (kept, batch, per_row)), hn=(hn, (kept, batch, hidden)))
    _present("forward", kind, c0=c0, b_hh=b_hh)
    forward_kernel, _ = _kernels(dtype)
    # w_hh goes in as stored (G·H, H): the kernel packs it, or copies its transposed slices, itself.
    forward_kernel(kind, run, batch, hidden, _ptr(xp), _ptr(h0), _ptr(c0), _ptr(w_hh), _ptr(b_hh),
                   _ptr(batch_sizes), _ptr(out), _ptr(cs), _ptr(gates), _ptr(hn), int(save), _ptr(work),
                   _ptr(h_T), _ptr(c_T), threads, -units if split else chunks, _ptr(starts))
    results = (out, h_T, c_T) if lstm else (out, h_T)
    return results, (batch_sizes, out, h0, cs, c0, gates, hn, w_hh)


def backward(kind: int, layout: tuple[Tensor, Tensor], padded: bool, threads: int, d_out: Tensor, d_hT: Tensor,
             d_cT: Tensor | None, out: Tensor, h0: Tensor, cs: Tensor | None, c0: Tensor | None,
             gates: Tensor | None, hn: Tensor | None, w_hh: Tensor, fresh: bool = False):
    """The backward kernel: ``(δxp, δa, δh0, δc0)``; δa is GRU's gradient of W_hh·h + b_hh (δxp elsewhere).

    δxp and δa come from this thread's kept scratch (they must die within the caller's backward) unless
    ``fresh`` (the operator's way: its outputs outlive the call).
    """
    batch_sizes, starts = layout
    steps, batch, hidden = out.shape
    boundary.check_layout(batch_sizes, starts, batch, steps)
    chunks, run = batch_sizes.shape
    gh = GATES[kind] * hidden
    dtype = _kernel_dtype(out, "backward")
    # Rows past a length must read zero in δxp and δa: cleared then.
    zero = padded or run < steps
    if fresh:
        d_xp = (out.new_zeros if zero else out.new_empty)(steps, batch, gh)
    else:
        d_xp = scratch("d_xp", steps * batch * gh, dtype, zero).view(steps, batch, gh)
    gru = kind == KINDS["gru"]
    d_a = d_xp
    if gru:
        d_a = ((out.new_zeros if zero else out.new_empty)(steps, batch, gh) if fresh else
               scratch("d_a", steps * batch * gh, dtype, zero).view(steps, batch, gh))
    lstm = kind == KINDS["lstm"]
    d_h = d_hT.contiguous().clone()
    d_c = d_cT.contiguous().clone() if lstm else None
    d_out = d_out.contiguous()  # kept in a name: the kernel must not see a freed temporary
    h0, w_hh = h0.contiguous(), w_hh.contiguous()
    c0 = None if c0 is None else c0.contiguous()
    kept = SAVED[kind] * hidden
    boundary.check("backward", dtype, d_out=(d_out, (steps, batch, hidden)), out=(out, (steps, batch, hidden)),
                   h0=(h0, (batch, hidden)), cs=(cs, (steps, batch, hidden)), c0=(c0, (batch, hidden)),
                   gates=(gates, (steps, batch, kept)), hn=(hn, (steps, batch, hidden)), w_hh=(w_hh, (gh, hidden)),
                   d_xp=(d_xp, (steps, batch, gh)), d_a=(d_a, (steps, batch, gh)), d_h=(d_h, (batch, hidden)),
                   d_c=(d_c, (batch, hidden)))
    _present("backward", kind, cs=cs, c0=c0, d_c=d_c, gates=gates, hn=hn)
    _, backward_kernel = _kernels(dtype)
    backward_kernel(kind, run, batch, hidden, _ptr(d_out), _ptr(out), _ptr(h0), _ptr(cs), _ptr(c0),
                    _ptr(gates), _ptr(hn), _ptr(w_hh), _ptr(batch_sizes), _ptr(d_xp), _ptr(d_a), _ptr(d_h),
                    _ptr(d_c), threads, chunks, _ptr(starts))
    return d_xp, d_a, d_h, d_c


# What the kernels dereference for a kind without a null check: an absent one is refused, not handed over as null.
_NEEDED = {KINDS["lstm"]: ("cs", "c0", "d_c", "gates"), KINDS["gru"]: ("b_hh", "gates", "hn")}


def _present(call: str, kind: int, **tensors: Tensor | None) -> None:
    missing = [name for name in _NEEDED.get(kind, ()) if name in tensors and tensors[name] is None]
    if missing:
        raise boundary.FusedBoundaryError(f"rnnkit's fused {call}: kind {kind} needs {missing}, got none")


def weight_grads(d_a: Tensor, h0: Tensor, out: Tensor, run: int, need_w: bool, need_b: bool):
    """δW_hh = Σ_t δa_tᵀ·h_{t-1} (h_{-1} = h0, then the outputs; rows past a length hold δa = 0), δb_hh = Σ δa."""
    d_w = d_b = None
    hidden, gh = out.shape[2], d_a.shape[2]
    if need_w:
        d_w = d_a[0].t().mm(h0)
        if run > 1:
            d_w = d_w.addmm(d_a[1:run].reshape(-1, gh).t(), out[: run - 1].reshape(-1, hidden))
    if need_b:
        d_b = d_a[:run].sum((0, 1))
    return d_w, d_b


class Recurrence(torch.autograd.Function):
    """``apply(kind, layout, padded, threads, units, x, w_ih, bias, h0, c0, w_hh, b_hh) -> out, h_T[, c_T]``.

    The input projection xp = x·W_ihᵀ + bias is part of the function, so that its buffer (the gates are kept
    over it until backward) and backward's δxp are kept between calls (``buffers``), not fresh each time.
    ``padded`` says some row stops early (outputs there must be zero); ``threads`` > 0 caps the BLAS
    threads for this call (1 is fastest at tiny batches), 0 leaves torch's setting; ``units`` > 1 splits the
    hidden units of a one-block layout across that many threads in the forward (ignored with several blocks).
    This is the plain eager path; under tracing, compiling and ``torch.func`` the operators of ``ops`` run.
    """

    @staticmethod
    def forward(ctx, kind: int, layout: tuple[Tensor, Tensor], padded: bool, threads: int, units: int, x: Tensor,
                w_ih: Tensor, bias: Tensor | None, h0: Tensor, c0: Tensor | None, w_hh: Tensor, b_hh: Tensor | None):
        xp, buffer = project(x, w_ih, bias)
        if buffer is not None:
            # The gates live over the buffer until this context is garbage (after backward, or with the graph).
            projections.give_when_gone(ctx, buffer)
        results, saved = forward(kind, layout, padded, threads, units, xp, h0, c0, w_hh, b_hh, save=True)
        _, out, _, cs, _, gates, hn, _ = saved
        ctx.kind, ctx.padded, ctx.threads = kind, padded, threads
        # The inputs themselves (not their contiguous copies): a recorded backward differentiates through them.
        ctx.save_for_backward(x, w_ih, bias, h0, c0, w_hh, b_hh, *layout, out, cs, gates, hn)
        return results

    @staticmethod
    def backward(ctx, d_out: Tensor, d_hT: Tensor, d_cT: Tensor | None = None):
        x, w_ih, bias, h0, c0, w_hh, b_hh, batch_sizes, starts, out, cs, gates, hn = ctx.saved_tensors
        kind, need = ctx.kind, ctx.needs_input_grad
        if torch.is_grad_enabled():
            # This backward is being recorded (create_graph, torch.func): differentiate the equations instead.
            grads = second_order.gradients(kind, (batch_sizes, starts), dict(
                x=x, w_ih=w_ih, bias=bias, h0=h0, c0=c0, w_hh=w_hh, b_hh=b_hh), (d_out, d_hT, d_cT),
                dict(zip(("x", "w_ih", "bias", "h0", "c0", "w_hh", "b_hh"), need[5:], strict=True)))
            return None, None, None, None, None, *grads.values()
        d_xp, d_a, d_h, d_c = backward(kind, (batch_sizes, starts), ctx.padded, ctx.threads, d_out, d_hT, d_cT,
                                       out, h0, cs, c0, gates, hn, w_hh)
        steps, batch, hidden = out.shape
        gh = d_xp.shape[2]
        d_x = d_w_ih = d_bias = None
        flat = d_xp.view(steps * batch, gh)
        if need[5]:
            d_x = flat.mm(w_ih).view(steps, batch, -1)
        if need[6]:
            d_w_ih = flat.t().mm(x.reshape(steps * batch, -1))
        if need[7]:
            d_bias = flat.sum(0)
        d_w, d_b = weight_grads(d_a, h0.contiguous(), out, batch_sizes.shape[1], need[10], need[11])
        d_c0 = d_c if need[9] else None
        return None, None, None, None, None, d_x, d_w_ih, d_bias, d_h, d_c0, d_w, d_b
