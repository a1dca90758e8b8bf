"""The fused back end: whole stacks of RNN (tanh, relu), LSTM and GRU layers, extras included, in C++.

Per layer and direction: one matmul projects every step's input (``xp = x·W_ihᵀ + b``, LN_ih applied there
for LayerNorm cells), then ``Recurrence`` (plain cells) or ``ExtrasRecurrence`` runs the time loop in C++.

Rows (sequences) never interact, so the batch is cut into one block of rows per torch thread (each ≥ 4
rows) and every block runs the whole loop on its own thread with a one-thread BLAS: no synchronisation
per step, where torch.nn forks and joins for every op. Tiny batches stay one block; their forward splits
the hidden units across the threads instead, which meet after every step (``_unit_threads``).

Variable lengths without packing and without wasted work: the rows are ranked by length once for the whole
stack and dealt round-robin to the blocks, each block longest first, so at step t only its first n_t rows
are computed (a shrinking matmul); the reverse direction reads each sequence reversed within its own
length (``rnnkit.lengths.reverse_padded``). Outputs and states go back to the caller's order at the end.
Random masks (dropout between layers, recurrent dropout, zoneout) are drawn in the caller's order exactly
as the reference back end draws them, so a seed gives the same numbers on both.

``preference()`` tells ``backend="auto"`` where this engine is the fastest; see ``registry``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.cells.extras import EPS
from rnnkit.engine.fused import constants, layout, ops
from rnnkit.engine.fused.contract import KINDS
from rnnkit.engine.fused.extras import ExtrasRecurrence
from rnnkit.engine.fused.recurrence import Recurrence
from rnnkit.engine.fused.recurrence import infer as recurrence_infer
from rnnkit.engine.fused.watch import watched
from rnnkit.engine.stack import run_stack
from rnnkit.lengths import full_as_dense

PLAIN = (RNNCell, LSTMCell, GRUCell)


def _kind(layer) -> int:
    if layer.cell_type is LSTMCell:
        return KINDS["lstm"]
    if layer.cell_type is GRUCell:
        return KINDS["gru"]
    return KINDS[layer.cell_for(0, 0).nonlinearity]


def _blas_threads(layer, batch: int, itemsize: int) -> int:
    """BLAS threads for the per-step matmul when the rows are one block (tiny batches; 0: torch's setting).

    One thread when W_hh is small (≤ 256 KiB, e.g. GRU at H = 128): a second thread only adds a fork/join per
    step there. Above that the step is memory-bound and two cores read the weight faster. This is the
    backward's setting; the forward splits its hidden units across threads instead (``_unit_threads``), and
    its product at 1-3 rows is a hand loop without the BLAS.
    """
    if layout.chunks(batch) > 1:
        return 0
    gates = layer.cell_type.gates
    return 1 if gates * layer.hidden_size ** 2 * itemsize <= 1 << 18 else 0


# The least W_hh (bytes) each thread of a unit-split forward gets; see ``_unit_threads``.
SPLIT_BYTES_PER_THREAD = 16 << 10


def _unit_threads(layer, batch: int, itemsize: int) -> int:
    """Threads the forward splits the hidden units across when the rows are one block (1: no split).

    Each thread owns a slice of W_hh (its units' rows of every gate), kept in its core's L2 for the whole call,
    and the threads meet after every step (``kernels_forward.h``). Every torch thread, as far as the CPUs
    allow, as long as each gets at least 16 KiB of W_hh: below that the meeting and the per-call start cost
    more than the product saves. Measured at batch 1 on the idle 2-core Xeon (AVX-512, 1 MiB L2 per core),
    f32, kernel only, µs per step, one thread → two, calls of 100 steps (fastest of many)::

        RNN   H 64 (16 KiB) 0.41 → 0.61   H 96 (36 KiB) 0.94 → 0.73   H 128 1.22 → 0.91   H 256 4.2 → 2.4
              H 512 24 → 8.4
        GRU   H 32 (12 KiB) 0.48 → 0.56   H 64 (48 KiB) 1.10 → 0.95   H 128 3.4 → 2.1     H 256 13.9 → 6.8
              H 512 143 → 65
        LSTM  H 32 (16 KiB) 0.55 → 0.58   H 64 (64 KiB) 1.44 → 1.02   H 128 4.6 → 2.7     H 256 27 → 9.3
              H 512 188 → 95

    (f64 RNN H 64, 32 KiB: 0.95 → 0.81. In calls of 20 steps the 36-48 KiB rows still gain 8-16%.)
    """
    if layout.chunks(batch) > 1:
        return 1
    gates = layer.cell_type.gates
    share = gates * layer.hidden_size ** 2 * itemsize // max(1, SPLIT_BYTES_PER_THREAD)
    return max(1, min(*constants.cores(), layer.hidden_size, share))


def _masks(cell, training: bool, steps: int, batch: int, like: Tensor, order: Tensor | None):
    """Recurrent-dropout and zoneout masks drawn as the reference draws them, then sorted like the batch."""
    masks = cell.sample_masks(steps, batch, like, training)
    if order is not None:
        index = order.to(like.device)
        masks = {k: v.index_select(0 if k == "recurrent_mask" else 1, index) for k, v in masks.items()}
    if cell.zoneout > 0 and not training:
        # Eval-mode zoneout keeps the expectation: d = p everywhere.
        full = like.new_full((steps, batch, cell.hidden_size), cell.zoneout)
        masks.update(zoneout_h=full, zoneout_c=full)
    return masks


def run_direction(layer, k: int, d: int, x: Tensor, h0: tuple[Tensor, ...] | None, rows: tuple[Tensor, Tensor],
                  padded: bool, threads: int, order: Tensor | None = None, units: int = 1):
    """One layer and direction over time-major x (T, B, F) whose rows are sorted longest first."""
    kind = _kind(layer)
    cell = layer.cell_for(k, d)
    p = layer.params_for(k, d)
    batch, hidden = x.shape[1], layer.hidden_size
    lstm = kind == KINDS["lstm"]
    b_ih, b_hh = p.get("bias_ih"), p.get("bias_hh")
    if kind == KINDS["gru"] or b_ih is None:
        bias, b_rec = b_ih, b_hh
    else:
        # RNN and LSTM add both biases before any nonlinearity: fold them into the input projection.
        bias, b_rec = b_ih + b_hh, None
    if h0 is None:
        zeros = x.new_zeros(batch, hidden)
        h0 = (zeros, zeros) if lstm else (zeros,)
    c0 = h0[1] if lstm else None
    if not cell.has_extras:
        if watched(x, p["weight_ih"], bias, h0[0], c0, p["weight_hh"], b_rec):
            # Compiling, tracing, exporting, torch.func: the registered operators (the projection stays visible).
            # Equal lengths: no layout given, the operator cuts the rows itself (a traced graph serves any shape).
            results = ops.run(kind, rows if padded else None, padded, threads, units,
                              F.linear(x, p["weight_ih"], bias), h0[0], c0, p["weight_hh"], b_rec)
            return results[0], tuple(results[1:])
        args = (kind, rows, padded, threads, units, x, p["weight_ih"], bias, h0[0], c0, p["weight_hh"], b_rec)
        if torch.is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args[5:]):
            results = Recurrence.apply(*args)
        else:
            results = recurrence_infer(*args)
        return results[0], tuple(results[1:])
    if cell.layer_norm:
        # LN(x·W_ihᵀ)·γ + β + b in one op: the bias rides along with β (a separate add was 3% of a step).
        shift = p["ln_ih_bias"] if bias is None else p["ln_ih_bias"] + bias
        xp = F.layer_norm(F.linear(x, p["weight_ih"]), (p["weight_ih"].shape[0],), p["ln_ih_weight"], shift, EPS)
    else:
        xp = F.linear(x, p["weight_ih"], bias)
    m = _masks(cell, layer.training, rows[0].shape[1], batch, x, order)
    ln = (p.get("ln_hh_weight"), p.get("ln_hh_bias"), p.get("ln_c_weight"), p.get("ln_c_bias"))
    results = ExtrasRecurrence.apply(kind, rows, padded, threads, xp, h0[0], c0, p["weight_hh"], b_rec,
                                     m.get("recurrent_mask"), m.get("zoneout_h"), m.get("zoneout_c") if lstm else None,
                                     *ln)
    return results[0], tuple(results[1:])


class FusedBackend:
    name = "fused"

    def unsupported(self, layer, x: Tensor, lengths: Tensor | None) -> str | None:
        reason = constants.failure()
        if reason is not None:
            return reason
        if layer.cell_type not in PLAIN:
            return f"the fused kernels have no {layer.cell_type.__name__}"
        extra = sorted(set(layer.cell_options) - {"nonlinearity", "layer_norm", "recurrent_dropout", "zoneout"})
        if extra:
            return f"the fused kernels have no cell options {extra}"
        if layer.cell_for(0, 0).has_extras and watched(x):
            return ("the fused kernels for layer_norm, recurrent_dropout and zoneout are not a registered operator: "
                    "they run in plain eager mode only, not under compile, tracing, export or torch.func")
        if x.device.type != "cpu":
            return f"the fused kernels run on the CPU, the input is on {x.device}"
        if x.dtype not in (torch.float32, torch.float64):
            return f"the fused kernels run float32 and float64, the input is {x.dtype}"
        return None

    def preference(self, layer, x: Tensor, lengths: Tensor | None, training: bool) -> float:
        """Score for ``auto`` (native scores 10): above it except where oneDNN's LSTM is faster.

        Measured (``benchmarks/engine.py``, 2 cores, hidden 128-512): oneDNN's LSTM *inference* beats these
        kernels on batches of 16 and 64 rows (fused 0.85-0.94× torch.nn at hidden ≥ 256), with ``lengths`` too
        since the native back end's rows hold their state through pad steps (native 1.03× / 1.44× torch.nn
        padded at 16 / 64 rows, fused 0.90× / 0.93×); so there a plain LSTM goes native. Under 8 rows the
        forward splits the hidden units across the cores and wins (batch 1: 1.1-1.7×). LSTM *training* is
        faster here at every batch (1.1-1.75× against native's 0.95-1.15×; with lengths about even), and GRU and
        simple RNN have no oneDNN kernel.
        """
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            return 30.0  # float32 under autocast, as torch.nn.GRU (oneDNN's bfloat16 LSTM needs AVX-512 BF16)
        rows = x.shape[1] if x.dim() == 3 else 1
        if layer.cell_type is LSTMCell and not training and rows >= 8:
            return 5.0
        return 20.0

    def run(self, layer, x: Tensor, hx, lengths: Tensor | None):
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # torch.nn.GRU under CPU autocast runs, and returns, float32: so does this engine, in the parameters'
            # dtype, whatever autocast would do to the projection (the kernels take no bfloat16).
            dtype = layer.params_for(0, 0)["weight_hh"].dtype
            with torch.autocast("cpu", enabled=False):
                return self.run(layer, x.to(dtype), None if hx is None else tuple(s.to(dtype) for s in hx), lengths)
        if torch.is_grad_enabled() and layout.inference_mode():
            # enable_grad() inside inference_mode(): autograd records nothing there anyway, but a Function
            # would try to save inference tensors for a backward that can never run.
            with torch.no_grad():
                return self.run(layer, x, hx, lengths)
        steps, batch = x.shape[0], x.shape[1]
        lengths = full_as_dense(lengths, steps)
        if lengths is None and watched(x):
            # Traced, compiled or exported: the operator cuts the rows itself when it runs, and nothing here may
            # branch on the batch size (a guard on it would pin the graph to the traced size, e.g. the blocks at
            # 2 threads are min(2, B // 4)). threads 0 (torch's BLAS setting) and units 1 (no split) suit any size.
            order, rows, threads, units = None, None, 0, 1
        else:
            order, rows = layout.layout(lengths, steps, batch)
            threads = _blas_threads(layer, batch, x.element_size())
            units = _unit_threads(layer, batch, x.element_size())
        if order is not None:
            lengths = lengths[order]
            index = order.to(x.device)
            x = x.index_select(1, index)
            if hx is not None:
                hx = tuple(s.index_select(1, index) for s in hx)
        padded = lengths is not None

        def direction(layer, k, d, x_d, h0, lengths, record=None):
            return run_direction(layer, k, d, x_d, h0, rows, padded, threads, order, units)

        def dropout(x: Tensor) -> Tensor:
            # Draw the mask in the caller's batch order, as the reference does, then sort it like x:
            # the same seed gives the same mask on every back end.
            noise = F.dropout(torch.ones_like(x), layer.dropout, training=True)
            return x * noise.index_select(1, order.to(x.device))

        x, states = run_stack(layer, x, hx, lengths, direction, dropout=None if order is None else dropout)
        if order is not None:
            inverse = torch.argsort(order).to(x.device)
            x = x.index_select(1, inverse)
            states = tuple(s.index_select(1, inverse) for s in states)
        return x, states
