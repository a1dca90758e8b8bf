"""The first-order linear recurrence h_t = a_t ⊙ h_(t-1) + b_t over a whole sequence at once.

This is all that is left of a recurrence whose gates read x_t only (minGRU, minLSTM): a_t and b_t are known
for every step before the first one runs, so no step waits for the previous one's matrix product, and the
elementwise recurrence can be computed in O(log T) rounds of whole-tensor operations instead of T steps.

The functions, all time-major (time is dim 0; the other dims are any shape, e.g. (T, B, H)):

``scan_linear(a, b, h0)`` (any signs), an autograd function whose backward is the same recurrence run from the
end (see ``_LinearScan``); ``scan_gated(u, c, h0)`` the same with a_t = 1 − σ(u_t), b_t = σ(u_t) ⊙ c_t, the gate
and the blend inside the one function (minGRU, minLSTM). Two algorithms compute the recurrence, with the same
result:
  * the work-efficient pairwise (parallel) scan. Two neighbouring steps compose into one,
        (a₁, b₁) then (a₂, b₂)  =  (a₂a₁, a₂b₁ + b₂),
    so pairing steps (0,1), (2,3), ... halves the sequence; the half-length recurrence is solved the same way
    (recursively) and gives every odd step, and each even step is one more step from the odd one before it:
    log₂T rounds of whole-tensor operations, about three times the step loop's arithmetic, memory O(T).
  * the step loop, one fused multiply-add a row of B·… values per step, written into one output tensor.
  The rounds are what a GPU (or many threads) wants: few launches, each over many values. On a CPU a round
  costs its arithmetic, and the step loop does a third of it; it loses only where a step is so small that the
  per-operation overhead (microseconds) dominates. So on a CPU the loop runs when a step has at least
  ``STEPWISE_MIN`` values, the pairwise scan otherwise and on every other device.
  Numerics: the very products and sums of the step loop, at most associated differently; nothing is divided
  and no logarithm is taken, so a product of many small a_t underflows to 0 exactly as the step loop's state
  forgets, and with a_t in [0, 1] (both cells) nothing overflows or becomes NaN, in any precision.

``scan_log(log_a, log_b, h0)`` (b_t > 0, the paper's log-space form): with a*_t = Σ_(k≤t) log a_k,
    h_t = exp(a*_t) ⊙ h0 + exp(a*_t + logcumsumexp_(k≤t)(log b_k − a*_k)),
a cumulative sum and a cumulative log-sum-exp (Feng et al. 2024, after Heinsen 2023). Numerics: a*_t only grows
more negative along the sequence, and the sum a*_t + logcumsumexp(...) of two large opposite numbers loses
|a*_t|·ε of absolute precision in log h_t (a relative error in h_t). The sequence is therefore cut into chunks of
``LOG_CHUNK`` steps, each starting from the last state of the one before (a short loop over T/LOG_CHUNK
chunks), which bounds |a*| by one chunk's forgetting. The initial state enters linearly (exp(a*_t) ⊙ h0 is a
product of a_t ≤ 1 terms, never overflowing), so h0 may be zero or of any sign without a log(0).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

LOG_CHUNK = 64  # steps per log-space chunk: bounds the cancellation described above
# Values per step from which a CPU runs the step loop. Measured (scan_gated forward + backward, one shared Zen 3
# core, T 128 and 2048): the pairwise scan 1.5-10x ahead at 96 and 384 values a step, the two level at 1,536,
# the loop up to 1.2x ahead at 6,144 (B 16 x H 384).
STEPWISE_MIN = 4096


def scan_linear(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """Every h_t of h_t = a_t ⊙ h_(t-1) + b_t, h_(-1) = h0 (zero if None); a, b (T, ...) → h (T, ...)."""
    return _LinearScan.apply(a, b, h0)


def solve(a: Tensor, b: Tensor, h0: Tensor | None = None, reverse: bool = False,
          algorithm: str | None = None) -> Tensor:
    """The recurrence without autograd, by ``algorithm`` ("pairwise", "stepwise"; None: chosen by size).

    ``reverse``: run from the last step back, h_t = a_t ⊙ h_(t+1) + b_t (the adjoint's direction).
    """
    if algorithm is None:
        algorithm = "stepwise" if a.device.type == "cpu" and a[0].numel() >= STEPWISE_MIN else "pairwise"
    if algorithm == "stepwise":
        return _stepwise(a, b, h0, reverse)
    if reverse:
        return solve(a.flip(0), b.flip(0), h0, False, algorithm).flip(0)
    if h0 is not None:  # fold the initial state into the first step: b_0 + a_0 ⊙ h0
        b = torch.cat([torch.addcmul(b[:1], a[:1], h0), b[1:]])
    return _pairwise(a, b)


class _LinearScan(torch.autograd.Function):
    """The scan with its adjoint written out: the backward is the same recurrence run from the end.

    With G_t = dL/dh_t through every later step (the upstream gradient g_t plus what h_(t+1) passes back),
        G_t = a_(t+1) ⊙ G_(t+1) + g_t,   dL/db_t = G_t,   dL/da_t = G_t ⊙ h_(t-1),   dL/dh0 = a_0 ⊙ G_0,
    a reversed linear scan. Autograd through the pairwise scan's strided slices would instead allocate a
    full-size zero tensor for every slice's gradient; this keeps only a and h (memory O(T)).
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, h0: Tensor | None) -> Tensor:
        h = solve(a, b, h0)
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: Tensor):
        a, h, h0 = ctx.saved_tensors
        grads = _adjoint(a, grad_h)
        grad_a = torch.empty_like(grads)
        torch.mul(grads[1:], h[:-1], out=grad_a[1:])
        if h0 is None:
            grad_a[0].zero_()
        else:
            torch.mul(grads[0], h0, out=grad_a[0])
        grad_h0 = a[0] * grads[0] if ctx.needs_input_grad[2] else None
        return grad_a, grads, grad_h0


def scan_gated(u: Tensor, c: Tensor, h0: Tensor | None = None) -> Tensor:
    """Every h_t of h_t = (1 − σ(u_t)) ⊙ h_(t-1) + σ(u_t) ⊙ c_t: the scan with a_t = 1 − s_t, b_t = s_t ⊙ c_t.

    minGRU (u = Linear_z(x)) and minLSTM (u = log i − log f) are both this interpolation. One autograd
    function for the gate, the blend and the scan keeps the backward to a handful of tensors (see ``_GatedScan``).
    """
    return _GatedScan.apply(u, c, h0)


class _GatedScan(torch.autograd.Function):
    """``scan_gated`` with its adjoint: G from ``_adjoint``, then, with s = σ(u) and h_(-1) = h0,
        dL/dc_t = G_t ⊙ s_t,   dL/du_t = G_t ⊙ (c_t − h_(t-1)) ⊙ s_t ⊙ (1 − s_t),   dL/dh0 = (1 − s_0) ⊙ G_0.
    """

    @staticmethod
    def forward(ctx, u: Tensor, c: Tensor, h0: Tensor | None) -> Tensor:
        s = torch.sigmoid(u)
        h = solve(1 - s, s * c, h0)
        ctx.save_for_backward(s, c, h, h0)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: Tensor):
        s, c, h, h0 = ctx.saved_tensors
        a = 1 - s
        grads = _adjoint(a, grad_h)
        grad_c = grads * s
        grad_u = torch.empty_like(grads)
        torch.sub(c[1:], h[:-1], out=grad_u[1:])
        grad_u[0] = c[0] if h0 is None else c[0] - h0
        grad_u.mul_(grad_c).mul_(a)
        grad_h0 = a[0] * grads[0] if ctx.needs_input_grad[2] else None
        return grad_u, grad_c, grad_h0


def _adjoint(a: Tensor, grad_h: Tensor) -> Tensor:
    """G_t = a_(t+1) ⊙ G_(t+1) + g_t from the last step back (see ``_LinearScan``)."""
    a_next = torch.cat([a[1:], a[:1]])  # G_t's coefficient is a_(t+1); the last G has nothing after it
    return solve(a_next, grad_h.contiguous(), reverse=True)


def _stepwise(a: Tensor, b: Tensor, h0: Tensor | None, reverse: bool) -> Tensor:
    """The scan one step at a time into one output tensor (no autograd)."""
    h = torch.empty_like(b)
    # Every step's views made at once (one call each, not three indexing calls a step).
    rows = list(zip(a.unbind(0), b.unbind(0), h.unbind(0), strict=True))
    prev = h0
    for a_t, b_t, h_t in reversed(rows) if reverse else rows:
        if prev is None:
            h_t.copy_(b_t)
        else:
            torch.addcmul(b_t, a_t, prev, out=h_t)
        prev = h_t
    return h


def _pairwise(a: Tensor, b: Tensor) -> Tensor:
    """The scan from a zero initial state by pairing neighbouring steps (no autograd; see the module docstring)."""
    steps = a.shape[0]
    h = torch.empty_like(b)
    if steps == 1:
        return h.copy_(b)
    even = steps - steps % 2
    a_even, a_odd = a[0:even:2], a[1:even:2]
    # Step pair i, composed: h_(2i+1) = (a_(2i+1) a_(2i)) h_(2i-1) + (a_(2i+1) b_(2i) + b_(2i+1)).
    h_odd = _pairwise(a_odd * a_even, torch.addcmul(b[1:even:2], a_odd, b[0:even:2]))
    h[1:even:2] = h_odd
    # One step from the odd state before: h_(2i) = a_(2i) h_(2i-1) + b_(2i); h_0 = b_0.
    h[0] = b[0]
    torch.addcmul(b[2:even:2], a_even[1:], h_odd[:-1], out=h[2:even:2])
    if steps > even:
        torch.addcmul(b[-1], a[-1], h_odd[-1], out=h[-1])
    return h


def scan_log(log_a: Tensor, log_b: Tensor, h0: Tensor | None = None, chunk: int = LOG_CHUNK) -> Tensor:
    """Every h_t of h_t = a_t ⊙ h_(t-1) + b_t from log a_t and log b_t, chunk by chunk; → h (T, ...)."""
    pieces, carry = [], h0
    for start in range(0, log_a.shape[0], chunk):
        a_star = torch.cumsum(log_a[start:start + chunk], dim=0)
        h = torch.exp(a_star + torch.logcumsumexp(log_b[start:start + chunk] - a_star, dim=0))
        if carry is not None:
            h = h + torch.exp(a_star) * carry
        pieces.append(h)
        carry = h[-1]
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)
