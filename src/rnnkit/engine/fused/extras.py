r"""One layer, one direction of a cell with extras (LayerNorm, recurrent dropout, zoneout) through time.

The same scheme as ``recurrence`` (the loop in C++, weight gradients as one matmul over all steps), on
the kernels' general loop (``forward_ext``/``backward_ext`` in kernels.cpp). Per step, rows < n_t::

    ĥ = h_{t-1} ⊙ m                          recurrent dropout (m = 1 when off)
    a = ĥ·W_hhᵀ;  â = LN_hh(a)                 (â = a without layer_norm)
    h̃, c̃ = the cell's step from xp_t and â    (LSTM: h̃ = o ⊙ tanh(LN_c(c̃)))
    h_t = h̃ + d_t ⊙ (h_{t-1} - h̃)            zoneout (d = 0 when off); c_t likewise

with xp = LN_ih(x·W_ihᵀ) + biases computed by the caller (see ``backend``). Backward returns δxp, and

    δW_hh = Σ_t δa_tᵀ·ĥ_t     δγ_hh = Σ δâ ⊙ â_norm     δβ_hh = Σ δâ (= δb_hh for GRU)   (LN_c alike)

Shapes: xp (T, B, G·H); h0, c0, m (B, H); d (T, B, H); γ, β (G·H,) and (H,) for LN_c.

No second derivatives here: a backward that is itself recorded (``create_graph=True``, ``torch.func``) raises
``SecondOrderError`` rather than return a gradient without a graph (the plain cells recompute instead:
``second_order``).
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from rnnkit.engine.fused import boundary
from rnnkit.engine.fused.buffers import scratch
from rnnkit.engine.fused.build import Extras, load
from rnnkit.engine.fused.contract import GATES, KINDS, SAVED_EXT
from rnnkit.engine.fused.recurrence import _kernel_dtype, _ptr


class SecondOrderError(RuntimeError):
    """A higher-order gradient was asked of a back end that cannot give one."""


SECOND_ORDER_ERROR = ("rnnkit's fused back end has no second derivative for cells with layer_norm, recurrent_dropout "
                      "or zoneout; use backend='native' or 'reference' for create_graph=True, gradient penalties "
                      "and torch.func")


def _kernels(dtype: torch.dtype):
    lib = load()
    suffix = "f32" if dtype == torch.float32 else "f64"
    return getattr(lib, f"rk_forward_ext_{suffix}"), getattr(lib, f"rk_backward_ext_{suffix}")


def _struct(t: dict) -> Extras:
    return Extras(**{name: _ptr(t.get(name)) for name, _ in Extras._fields_})


class ExtrasRecurrence(torch.autograd.Function):
    """``apply(kind, layout, padded, threads, xp, h0, c0, w_hh, b_hh, rmask, zh, zc, ln_w, ln_b,
    lnc_w, lnc_b) -> out, h_T[, c_T]``; masks are constants, every other tensor may be None where off.
    ``xp`` is handed over: LSTM and RNN overwrite it with their gates."""

    @staticmethod
    def forward(ctx, kind, layout, padded, threads, xp, h0, c0, w_hh, b_hh, rmask, zh, zc, ln_w, ln_b,
                lnc_w, lnc_b):
        steps, batch = xp.shape[0], xp.shape[1]
        hidden = w_hh.shape[1]
        gh = GATES[kind] * hidden
        batch_sizes, starts = layout
        chunks, run = batch_sizes.shape
        lstm = kind == KINDS["lstm"]
        c = {k: (None if v is None else v.contiguous()) for k, v in dict(
            xp=xp, h0=h0, c0=c0, w_hh=w_hh, b_hh=b_hh, rmask=rmask, zh=zh, zc=zc, ln_w=ln_w, ln_b=ln_b,
            lnc_w=lnc_w, lnc_b=lnc_b).items()}
        if c["b_hh"] is None and kind == KINDS["gru"]:
            c["b_hh"] = xp.new_zeros(gh)
        new = xp.new_zeros if padded or run < steps else xp.new_empty
        out = new(steps, batch, hidden)
        buf = {
            "cs": xp.new_empty(steps, batch, hidden) if lstm else None,
            # LSTM and RNN keep their gates (G·H a row) over xp, the caller's fresh projection: each unit's xp is
            # read before its gates are written (kernels_extras.h), and a fresh (T, B, G·H) buffer costs page
            # faults (see buffers). GRU keeps [r z n hn], one more block than xp has.
            "gates": xp.new_empty(steps, batch, SAVED_EXT[kind] * hidden) if kind == KINDS["gru"] else c["xp"],
            "ct": xp.new_empty(steps, batch, hidden) if lstm else None,
            "xh": xp.new_empty(steps, batch, gh) if ln_w is not None else None,
            "rs": xp.new_empty(steps, batch) if ln_w is not None else None,
            "xhc": xp.new_empty(steps, batch, hidden) if lnc_w is not None else None,
            "rsc": xp.new_empty(steps, batch) if lnc_w is not None else None,
            "hin": xp.new_empty(batch, hidden) if rmask is not None else None,
        }
        work = xp.new_empty(batch, gh)
        h_T = xp.new_empty(batch, hidden)
        c_T = xp.new_empty(batch, hidden) if lstm else None
        w_t = c["w_hh"].t().contiguous()
        extras = _struct({**c, **buf})
        dtype = _kernel_dtype(c["xp"], "extras forward")
        _check(dtype, kind, steps, batch, hidden, layout, {**c, **buf, "out": out, "work": work, "w_t": w_t,
                                                            "h_T": h_T, "c_T": c_T})
        forward_kernel, _ = _kernels(dtype)
        forward_kernel(kind, run, batch, hidden, _ptr(c["xp"]), _ptr(c["h0"]), _ptr(c["c0"]), _ptr(w_t),
                       _ptr(c["b_hh"]), _ptr(batch_sizes), _ptr(out), _ptr(buf["cs"]), _ptr(buf["gates"]),
                       _ptr(work), _ptr(h_T), _ptr(c_T), threads, ctypes.byref(extras), chunks, _ptr(starts))
        ctx.kind, ctx.padded, ctx.threads, ctx.starts = kind, padded, threads, starts
        ctx.gru_bias = b_hh is not None and kind == KINDS["gru"]
        names = ["batch_sizes", "out", "h0", "c0", "w_hh", "rmask", "zh", "zc", "ln_w", "ln_b", "lnc_w", "lnc_b",
                 *buf]
        ctx.names = names
        values = dict(batch_sizes=batch_sizes, out=out, **c, **buf)
        ctx.save_for_backward(*[values[n] for n in names])
        return (out, h_T, c_T) if lstm else (out, h_T)

    @staticmethod
    def backward(ctx, d_out: Tensor, d_hT: Tensor, d_cT: Tensor | None = None):
        if torch.is_grad_enabled():
            raise SecondOrderError(SECOND_ORDER_ERROR)
        s = dict(zip(ctx.names, ctx.saved_tensors, strict=True))
        kind, out = ctx.kind, s["out"]
        steps, batch, hidden = out.shape
        chunks, run = s["batch_sizes"].shape
        gh = GATES[kind] * hidden
        padded = ctx.padded or run < steps
        d_xp = (out.new_zeros if padded else out.new_empty)(steps, batch, gh)
        # δa never leaves this call: this thread's kept scratch (see buffers), cleared where rows end early.
        d_a = scratch("d_a", steps * batch * gh, out.dtype, padded).view(steps, batch, gh)
        d_h = d_hT.contiguous().clone()
        d_c = None if s["cs"] is None else d_cT.contiguous().clone()
        need_beta = s["ln_w"] is not None or ctx.gru_bias
        # One row of accumulators per block of rows (each runs on its own thread), summed below.
        d_ln_w = out.new_zeros(chunks, gh) if s["ln_w"] is not None else None
        d_ln_b = out.new_zeros(chunks, gh) if need_beta else None
        d_lnc_w = out.new_zeros(chunks, hidden) if s["lnc_w"] is not None else None
        d_lnc_b = out.new_zeros(chunks, hidden) if s["lnc_w"] is not None else None
        tmp = out.new_empty(batch, hidden)
        d_out = d_out.contiguous()
        extras = _struct(s)
        dtype = _kernel_dtype(out, "extras backward")
        _check(dtype, kind, steps, batch, hidden, (s["batch_sizes"], ctx.starts),
               {**s, "d_out": d_out, "d_xp": d_xp, "d_a": d_a, "d_h": d_h, "d_c": d_c, "tmp": tmp,
                "d_ln_w": d_ln_w, "d_ln_b": d_ln_b, "d_lnc_w": d_lnc_w, "d_lnc_b": d_lnc_b}, chunks)
        _, backward_kernel = _kernels(dtype)
        backward_kernel(kind, run, batch, hidden, _ptr(d_out), _ptr(out), _ptr(s["h0"]), _ptr(s["cs"]),
                        _ptr(s["c0"]), _ptr(s["gates"]), _ptr(s["w_hh"]), _ptr(s["batch_sizes"]), _ptr(d_xp),
                        _ptr(d_a), _ptr(d_h), _ptr(d_c), _ptr(d_ln_w), _ptr(d_ln_b), _ptr(d_lnc_w),
                        _ptr(d_lnc_b), _ptr(tmp), ctx.threads, ctypes.byref(extras), chunks, _ptr(ctx.starts))
        d_ln_w, d_ln_b, d_lnc_w, d_lnc_b = (None if g is None else g.sum(0) for g in (d_ln_w, d_ln_b, d_lnc_w, d_lnc_b))
        d_w = None
        if ctx.needs_input_grad[7]:
            # δW_hh = Σ_t δa_tᵀ·ĥ_t with ĥ_t = h_{t-1} ⊙ m
            mask = s["rmask"]
            h0 = s["h0"] if mask is None else s["h0"] * mask
            d_w = d_a[0].t().mm(h0)
            if run > 1:
                prev = out[: run - 1] if mask is None else out[: run - 1] * mask
                d_w.addmm_(d_a[1:run].reshape(-1, gh).t(), prev.reshape(-1, hidden))
        d_b = d_ln_b if ctx.gru_bias and ctx.needs_input_grad[8] else None
        d_c0 = d_c if ctx.needs_input_grad[6] else None
        return (None, None, None, None, d_xp, d_h, d_c0, d_w, d_b, None, None, None, d_ln_w,
                None if d_ln_b is None or s["ln_w"] is None else d_ln_b.clone(), d_lnc_w, d_lnc_b)


def _check(dtype, kind: int, steps: int, batch: int, hidden: int, layout, t: dict, chunks: int = 0) -> None:
    """Every tensor the extras kernels read or write, checked against its shape (``boundary``)."""
    boundary.check_layout(*layout, batch, steps)
    gh, lstm = GATES[kind] * hidden, kind == KINDS["lstm"]
    seq, row, seq_gh = (steps, batch, hidden), (batch, hidden), (steps, batch, gh)
    shapes = dict(xp=seq_gh, h0=row, c0=row, w_hh=(gh, hidden), w_t=(hidden, gh), b_hh=(gh,), rmask=row, zh=seq,
                  zc=seq, ln_w=(gh,), ln_b=(gh,), lnc_w=(hidden,), lnc_b=(hidden,), out=seq, cs=seq,
                  gates=(steps, batch, SAVED_EXT[kind] * hidden), ct=seq, xh=seq_gh, rs=(steps, batch), xhc=seq,
                  rsc=(steps, batch), hin=row, work=(batch, gh), h_T=row, c_T=row, d_out=seq, d_xp=seq_gh,
                  d_a=seq_gh, d_h=row, d_c=row, tmp=row, d_ln_w=(chunks, gh), d_ln_b=(chunks, gh),
                  d_lnc_w=(chunks, hidden), d_lnc_b=(chunks, hidden))
    boundary.check("extras kernels", dtype, **{name: (value, shapes[name]) for name, value in t.items()
                                                if name in shapes})
    needed = [("c0", lstm), ("cs", lstm), ("ct", lstm), ("ln_b", t.get("ln_w") is not None),
              ("lnc_b", t.get("lnc_w") is not None), ("xh", t.get("ln_w") is not None),
              ("rs", t.get("ln_w") is not None), ("xhc", t.get("lnc_w") is not None),
              ("rsc", t.get("lnc_w") is not None), ("hin", t.get("rmask") is not None),
              ("b_hh", kind == KINDS["gru"])]
    missing = [name for name, need in needed if need and name in t and t[name] is None]
    if missing:
        raise boundary.FusedBoundaryError(f"rnnkit's fused extras kernels: kind {kind} needs {missing}, got none")
