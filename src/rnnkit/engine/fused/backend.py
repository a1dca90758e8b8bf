"""The fused back end: whole stacks of RNN (tanh, relu), LSTM and GRU layers, extras included, in C++.

Per layer and direction: one matmul projects every step's input (``xp = x·W_ihᵀ + b``, LN_ih applied there
for LayerNorm cells), then ``Recurrence`` (plain cells) or ``ExtrasRecurrence`` runs the time loop in C++.

Rows (sequences) never interact, so the batch is cut into one block of rows per torch thread (each ≥ 4
rows) and every block runs the whole loop on its own thread with a one-thread BLAS: no synchronisation
per step, where torch.nn forks and joins for every op. Tiny batches stay one block (``_blas_threads``).

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
from rnnkit.engine.fused.build import failure
from rnnkit.engine.fused.extras import ExtrasRecurrence
from rnnkit.engine.fused.recurrence import KINDS, Recurrence
from rnnkit.lengths import reverse_padded

PLAIN = (RNNCell, LSTMCell, GRUCell)


def _kind(layer) -> int:
    if layer.cell_type is LSTMCell:
        return KINDS["lstm"]
    if layer.cell_type is GRUCell:
        return KINDS["gru"]
    return KINDS[layer.cell_for(0, 0).nonlinearity]


def _chunks(batch: int) -> int:
    """Blocks of rows run on their own thread: one per torch thread, each of at least 4 rows."""
    return max(1, min(torch.get_num_threads(), batch // 4))


def _blas_threads(layer, batch: int, itemsize: int) -> int:
    """BLAS threads for the per-step matmul when the rows are one block (tiny batches; 0: torch's setting).

    One thread when W_hh is small (≤ 256 KiB, e.g. GRU at H = 128): a second thread only adds a fork/join per
    step there. Above that the step is memory-bound and two cores read the weight faster.
    """
    if _chunks(batch) > 1:
        return 0
    gates = {RNNCell: 1, GRUCell: 3, LSTMCell: 4}[layer.cell_type]
    return 1 if gates * layer.hidden_size ** 2 * itemsize <= 1 << 18 else 0


def layout(lengths: Tensor | None, steps: int, batch: int) -> tuple[Tensor | None, tuple[Tensor, Tensor]]:
    """The row order and ``(batch_sizes, starts)`` the kernels run on (see ``recurrence``).

    Without lengths: rows stay in place, cut into equal blocks. With lengths: sorted longest first and dealt
    round-robin to the blocks, so every block gets a fair share of long and short sequences; within a block
    rows stay longest first, so the rows still running at step t are the block's first n_t.
    """
    chunks = _chunks(batch)
    # Block c holds rows c, c + C, c + 2C, ... of the ranking: ceil((B - c) / C) rows.
    bounds = [0]
    for c in range(chunks):
        bounds.append(bounds[-1] + (batch - c + chunks - 1) // chunks)
    starts = torch.tensor(bounds, dtype=torch.int64)
    if lengths is None:
        sizes = torch.tensor([bounds[c + 1] - bounds[c] for c in range(chunks)], dtype=torch.int64)
        return None, (sizes.unsqueeze(1).expand(chunks, steps).contiguous(), starts)
    ranked = torch.argsort(lengths, descending=True, stable=True)
    order = torch.cat([ranked[c::chunks] for c in range(chunks)])
    run = int(lengths.max())
    t = torch.arange(run).unsqueeze(1)
    sizes = torch.stack([(t < lengths[order[bounds[c]:bounds[c + 1]]].unsqueeze(0)).sum(1) for c in range(chunks)])
    return order, (sizes, starts)


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
                  padded: bool, threads: int, order: Tensor | None = None):
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
        xp = F.linear(x, p["weight_ih"], bias)
        results = Recurrence.apply(kind, rows, padded, threads, xp, h0[0], c0, p["weight_hh"], b_rec)
        return results[0], tuple(results[1:])
    xp = F.linear(x, p["weight_ih"])
    if cell.layer_norm:
        xp = F.layer_norm(xp, (xp.shape[-1],), p["ln_ih_weight"], p["ln_ih_bias"], EPS)
    if bias is not None:
        xp = xp + bias
    m = _masks(cell, layer.training, rows[0].shape[1], batch, x, order)
    ln = (p.get("ln_hh_weight"), p.get("ln_hh_bias"), p.get("ln_c_weight"), p.get("ln_c_bias"))
    results = ExtrasRecurrence.apply(kind, rows, padded, threads, xp, h0[0], c0, p["weight_hh"], b_rec,
                                     m.get("recurrent_mask"), m.get("zoneout_h"), m.get("zoneout_c") if lstm else None,
                                     *ln)
    return results[0], tuple(results[1:])


class FusedBackend:
    name = "fused"

    def unsupported(self, layer, x: Tensor, lengths: Tensor | None) -> str | None:
        reason = failure()
        if reason is not None:
            return reason
        if layer.cell_type not in PLAIN:
            return f"the fused kernels have no {layer.cell_type.__name__}"
        extra = sorted(set(layer.cell_options) - {"nonlinearity", "layer_norm", "recurrent_dropout", "zoneout"})
        if extra:
            return f"the fused kernels have no cell options {extra}"
        if x.device.type != "cpu":
            return f"the fused kernels run on the CPU, the input is on {x.device}"
        if x.dtype not in (torch.float32, torch.float64):
            return f"the fused kernels run float32 and float64, the input is {x.dtype}"
        return None

    def preference(self, layer, x: Tensor, lengths: Tensor | None, training: bool) -> float:
        """Score for ``auto`` (native scores 10): above it except where oneDNN's LSTM is faster.

        Measured (benchmarks/engine.py): oneDNN's LSTM beats these kernels on padded batches of every size,
        so a plain LSTM without ``lengths`` goes native; with ``lengths`` torch.nn needs a PackedSequence,
        whose slow path these kernels beat (training 1.5×). GRU and simple RNN have no oneDNN kernel.
        """
        if layer.cell_type is LSTMCell and lengths is None:
            return 5.0
        return 20.0

    def run(self, layer, x: Tensor, hx, lengths: Tensor | None):
        steps, batch = x.shape[0], x.shape[1]
        if lengths is not None and bool((lengths == steps).all()):
            lengths = None
        order, rows = layout(lengths, steps, batch)
        if order is not None:
            lengths = lengths[order]
            index = order.to(x.device)
            x = x.index_select(1, index)
            if hx is not None:
                hx = tuple(s.index_select(1, index) for s in hx)
        padded = lengths is not None
        threads = _blas_threads(layer, batch, x.element_size())
        dirs = layer.num_directions
        finals: list[tuple[Tensor, ...]] = []
        for k in range(layer.num_layers):
            outputs = []
            for d in range(dirs):
                index = k * dirs + d
                h0 = None if hx is None else tuple(s[index] for s in hx)
                x_d = x if d == 0 else reverse_padded(x, lengths)
                out, final = run_direction(layer, k, d, x_d, h0, rows, padded, threads, order)
                outputs.append(out if d == 0 else reverse_padded(out, lengths))
                finals.append(final)
            x = outputs[0] if dirs == 1 else torch.cat(outputs, dim=2)
            if layer.dropout > 0 and layer.training and k < layer.num_layers - 1:
                if order is None:
                    x = F.dropout(x, layer.dropout, training=True)
                else:
                    # Draw the mask in the caller's batch order, as the reference does, then sort it like x:
                    # the same seed gives the same mask on every back end.
                    noise = F.dropout(torch.ones_like(x), layer.dropout, training=True)
                    x = x * noise.index_select(1, order.to(x.device))
        states = tuple(torch.stack([f[i] for f in finals]) for i in range(layer.cell_type.state_count))
        if order is not None:
            inverse = torch.argsort(order).to(x.device)
            x = x.index_select(1, inverse)
            states = tuple(s.index_select(1, inverse) for s in states)
        return x, states
