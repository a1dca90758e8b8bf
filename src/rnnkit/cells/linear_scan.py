"""The first-order linear recurrence h_t = a_t ⊙ h_(t-1) + b_t over a whole sequence at once.

This is all that is left of a recurrence whose gates read x_t only (minGRU, minLSTM): a_t and b_t are known
for every step before the first one runs, so no step waits for the previous one's matrix product, and the
elementwise recurrence can be computed in O(log T) rounds of whole-tensor operations instead of T steps.

Two formulations, both time-major (time is dim 0; the other dims are any shape, e.g. (T, B, H)):

``scan_linear(a, b, h0)`` (any signs): the work-efficient pairwise scan. Two neighbouring steps compose into one,
    (a₁, b₁) then (a₂, b₂)  =  (a₂a₁, a₂b₁ + b₂),
so pairing steps (0,1), (2,3), ... halves the sequence; the half-length recurrence is solved the same way
(recursively) and gives every odd step, and each even step is one more step from the odd one before it.
log₂T levels, about 2T products in all, memory O(T). Numerics: the very products and sums of the step loop,
only associated differently; nothing is divided and no logarithm is taken, so a product of many small a_t
underflows to 0 exactly as the step loop's state forgets, and nothing becomes NaN or infinite.

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

LOG_CHUNK = 64  # steps per log-space chunk: bounds the cancellation described above


def scan_linear(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """Every h_t of h_t = a_t ⊙ h_(t-1) + b_t, h_(-1) = h0 (zero if None); a, b (T, ...) → h (T, ...)."""
    if h0 is not None:
        b = torch.cat([a[:1] * h0 + b[:1], b[1:]])
    return _pairwise(a, b)


def _pairwise(a: Tensor, b: Tensor) -> Tensor:
    """The scan from a zero initial state, by pairing neighbouring steps (see the module docstring)."""
    steps = a.shape[0]
    if steps == 1:
        return b
    even = steps - steps % 2
    a_even, a_odd = a[0:even:2], a[1:even:2]
    b_even, b_odd = b[0:even:2], b[1:even:2]
    # Step pair i, composed: h_(2i+1) = (a_(2i+1) a_(2i)) h_(2i-1) + (a_(2i+1) b_(2i) + b_(2i+1)).
    h_odd = _pairwise(a_odd * a_even, a_odd * b_even + b_odd)
    # One step from the odd state before: h_(2i) = a_(2i) h_(2i-1) + b_(2i); h_0 = b_0.
    h_even = torch.cat([b[:1], a_even[1:] * h_odd[:-1] + b_even[1:]])
    h = torch.stack([h_even, h_odd], dim=1).reshape(even, *a.shape[1:])
    if steps > even:
        h = torch.cat([h, (a[-1] * h_odd[-1] + b[-1]).unsqueeze(0)])
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
