r"""The minimal cells' gated scan (minGRU, minLSTM) in C++, as PyTorch operators.

    rnnkit::gated_scan(u, c, h0, lengths?) -> (out, h_n)
    rnnkit::gated_scan_backward(d_out, d_hn, u, c, h0, out, lengths?) -> (d_u, d_c, d_h0)

Per row, over its own length L (every step without ``lengths``)::

    h_t = (1 − σ(u_t)) ⊙ h_(t−1) + σ(u_t) ⊙ c_t,   h_(−1) = h0;   out_t = h_t (t < L), 0 after;   h_n = h_(L−1)

what ``rnnkit.cells.linear_scan.scan_gated`` followed by the layer's mask and last-step gather computes, in one
pass forward and one back (``kernels_scan.h``: the adjoint recurrence from each row's end), each vectorised
along the units and cut into blocks of rows on torch's threads. u and c come from one matrix product over all
steps, done by the caller in torch (``MinimalCell.gated_inputs``), so autograd carries their gradients on to
the weights, the input and, in the "log" form, through g. Where u and c are the two halves of one projection
(minGRU's plain form) the kernel reads them in place, rows 2H apart (``boundary.check_rows``), not copied.

Each operator has a fake kernel (shapes only) and the first its derivative (``register_autograd``), so
``torch.compile(fullgraph=True)`` and ``torch.export`` see two operators. A backward that is itself recorded
(``create_graph=True``) differentiates the same equations in torch operators instead: slower, never a gradient
without a graph. Shapes: u, c, out (T, B, H); h0, h_n (B, H); lengths (B,) int64 on the CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.engine.fused import boundary, constants, layout
from rnnkit.engine.fused.build import load
from rnnkit.engine.fused.recurrence import _kernel_dtype, _ptr
from rnnkit.lengths import step_mask


def unsupported(x: Tensor) -> str | None:
    """Why the fused scan cannot run for an input like ``x`` (the projection's dtype and device), or ``None``."""
    reason = constants.failure()
    if reason is not None:
        return reason
    if x.device.type != "cpu":
        return f"the fused kernels run on the CPU, the input is on {x.device}"
    if x.dtype not in (torch.float32, torch.float64):
        return f"the fused kernels run float32 and float64, the input is {x.dtype}"
    if torch._C._are_functorch_transforms_active():
        return "the fused gated scan has no torch.func (vmap, grad) rule"
    return None


def _kernel(step: str, dtype: torch.dtype):
    return getattr(load(), f"rk_gated_scan_{step}_{'f32' if dtype == torch.float32 else 'f64'}")


def _rows(t: Tensor) -> tuple[Tensor, int]:
    """u or c as the kernel reads it, with its row stride: a view with dense rows (minGRU's u and h̃ are the two
    halves of one projection) in place, anything else made contiguous."""
    batch, hidden = t.shape[1], t.shape[2]
    ld = t.stride(1)
    if not t.is_contiguous() and t.stride(2) == 1 and ld > hidden and t.stride(0) == batch * ld:
        return t, ld
    return t.contiguous(), hidden


def _check(call: str, dtype: torch.dtype, steps: int, batch: int, hidden: int, lengths: Tensor | None,
           rows: dict[str, tuple[Tensor, int]], **tensors: Tensor) -> None:
    """Every tensor the kernel reads or writes against its shape, and the lengths within [0, T] (``boundary``)."""
    seq, row = (steps, batch, hidden), (batch, hidden)
    shapes = {name: row if name in ("h0", "h_n", "d_h") else seq for name in tensors}
    boundary.check(call, dtype, lengths=(lengths, (batch,)), **{n: (t, shapes[n]) for n, t in tensors.items()})
    for name, (t, ld) in rows.items():
        boundary.check_rows(call, dtype, name, t, seq, ld)
    if lengths is not None and batch and not (0 <= int(lengths.min()) and int(lengths.max()) <= steps):
        raise boundary.FusedBoundaryError(f"rnnkit's fused {call}: lengths {lengths.tolist()} outside [0, {steps}]")


def _lengths(lengths: Tensor | None) -> Tensor | None:
    return None if lengths is None else lengths.to("cpu", torch.int64).contiguous()


@torch.library.custom_op("rnnkit::gated_scan", mutates_args=(), device_types="cpu")
def gated_scan_op(u: Tensor, c: Tensor, h0: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
    dtype = _kernel_dtype(u, "gated scan")
    (u, ld_u), (c, ld_c) = _rows(u), _rows(c)
    h0, lengths = h0.contiguous(), _lengths(lengths)
    steps, batch, hidden = u.shape
    out, h_n = u.new_empty(u.shape), h0.new_empty(h0.shape)
    _check("gated scan", dtype, steps, batch, hidden, lengths, {"u": (u, ld_u), "c": (c, ld_c)}, h0=h0, out=out,
           h_n=h_n)
    _kernel("forward", dtype)(steps, batch, hidden, _ptr(u), ld_u, _ptr(c), ld_c, _ptr(h0), _ptr(lengths),
                              _ptr(out), _ptr(h_n), layout.chunks(batch))
    return out, h_n


@gated_scan_op.register_fake
def _(u, c, h0, lengths):
    return u.new_empty(u.shape), h0.new_empty(h0.shape)


@torch.library.custom_op("rnnkit::gated_scan_backward", mutates_args=(), device_types="cpu")
def gated_scan_backward_op(d_out: Tensor, d_hn: Tensor, u: Tensor, c: Tensor, h0: Tensor, out: Tensor,
                           lengths: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    dtype = _kernel_dtype(u, "gated scan backward")
    (u, ld_u), (c, ld_c) = _rows(u), _rows(c)
    d_out, h0, out = (t.contiguous() for t in (d_out, h0, out))
    lengths = _lengths(lengths)
    steps, batch, hidden = u.shape
    d_u, d_c = u.new_empty(u.shape), u.new_empty(u.shape)
    d_h = d_hn.contiguous().clone()  # δh_n in, δh0 out
    _check("gated scan backward", dtype, steps, batch, hidden, lengths, {"u": (u, ld_u), "c": (c, ld_c)},
           d_out=d_out, h0=h0, out=out, d_u=d_u, d_c=d_c, d_h=d_h)
    _kernel("backward", dtype)(steps, batch, hidden, _ptr(d_out), _ptr(u), ld_u, _ptr(c), ld_c, _ptr(h0),
                               _ptr(out), _ptr(lengths), _ptr(d_u), _ptr(d_c), _ptr(d_h), layout.chunks(batch))
    return d_u, d_c, d_h


@gated_scan_backward_op.register_fake
def _(d_out, d_hn, u, c, h0, out, lengths):
    return u.new_empty(u.shape), u.new_empty(u.shape), h0.new_empty(h0.shape)


def _setup_context(ctx, inputs, output):
    u, c, h0, lengths = inputs
    ctx.save_for_backward(u, c, h0, lengths, output[0])


def _backward(ctx, d_out: Tensor | None, d_hn: Tensor | None):
    u, c, h0, lengths, out = ctx.saved_tensors
    d_out = torch.zeros_like(out) if d_out is None else d_out
    d_hn = torch.zeros_like(h0) if d_hn is None else d_hn
    if torch.is_grad_enabled():  # a recorded backward: the equations, differentiated with a graph
        d_u, d_c, d_h = _recorded_gradients(u, c, h0, lengths, d_out, d_hn)
    else:
        d_u, d_c, d_h = gated_scan_backward_op(d_out, d_hn, u, c, h0, out, lengths)
    return d_u, d_c, d_h, None


gated_scan_op.register_autograd(_backward, setup_context=_setup_context)


def _equations(u: Tensor, c: Tensor, h0: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
    """The operator's forward as a step loop of torch operators (for the recorded backward)."""
    running = None if lengths is None else step_mask(lengths, u.shape[0], u.device)  # (T, B, 1)
    h, outs = h0, []
    for t in range(u.shape[0]):
        s = torch.sigmoid(u[t])
        new = (1 - s) * h + s * c[t]
        if running is not None:
            h, new = torch.where(running[t], new, h), torch.where(running[t], new, torch.zeros_like(new))
        else:
            h = new
        outs.append(new)
    return torch.stack(outs), h


def _recorded_gradients(u, c, h0, lengths, d_out, d_hn):
    inputs = (u, c, h0)
    wanted = [t for t in inputs if t.requires_grad]
    with torch.enable_grad():
        out, h_n = _equations(u, c, h0, lengths)
        found = iter(torch.autograd.grad((out, h_n), wanted, (d_out, d_hn), create_graph=True, allow_unused=True)
                     if wanted else ())
    grads = [next(found) if t.requires_grad else None for t in inputs]
    return tuple(torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads, strict=True))


def gated_scan(u: Tensor, c: Tensor, h0: Tensor | None, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(out, h_n)`` of the gated scan (module docstring); ``h0`` None starts from zeros."""
    if h0 is None:
        h0 = u.new_zeros(u.shape[1:])
    return gated_scan_op(u, c, h0, lengths)
