"""The row layout the fused kernels run on: rows (sequences) cut into blocks, one per thread, longest first.

Rows never interact, so the batch is cut into one block of rows per torch thread (each of at least 4 rows), and
with lengths the rows are ranked once and dealt round-robin to the blocks (``layout``). The back end lays out
the rows before a call; the registered operators (``ops``) lay them out themselves when a traced graph gives
none. Both look ``chunks`` up here when they run, so a test that replaces it steers both.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from rnnkit.engine.fused import constants
from rnnkit.engine.fused.watch import watched
from rnnkit.lengths import rank


def chunks(batch: int) -> int:
    """Blocks of rows run on their own thread: one per torch thread, each of at least 4 rows."""
    return max(1, min(constants.cores()[0], batch // 4))


def layout(lengths: Tensor | None, steps: int, batch: int) -> tuple[Tensor | None, tuple[Tensor, Tensor]]:
    """The row order and ``(batch_sizes, starts)`` the kernels run on (see ``recurrence``).

    Without lengths: rows stay in place, cut into equal blocks. With lengths: sorted longest first and dealt
    round-robin to the blocks, so every block gets a fair share of long and short sequences; within a block
    rows stay longest first, so the rows still running at step t are the block's first n_t.
    """
    blocks = chunks(batch)
    bounds = _bounds(batch, blocks)
    if lengths is None:
        if watched():
            # Built fresh: a cached one made while tracing would be a fake tensor, useless to the next call.
            return None, _even_layout.__wrapped__(steps, batch, blocks, False)
        return None, _even_layout(steps, batch, blocks, inference_mode())
    starts = torch.tensor(bounds, dtype=torch.int64)
    ranked = rank(lengths)
    order = torch.cat([ranked[c::blocks] for c in range(blocks)])
    run = int(lengths.max())
    t = torch.arange(run).unsqueeze(1)
    sizes = torch.stack([(t < lengths[order[bounds[c]:bounds[c + 1]]].unsqueeze(0)).sum(1) for c in range(blocks)])
    return order, (sizes, starts)


def _bounds(batch: int, blocks: int) -> list[int]:
    # Block c holds rows c, c + C, c + 2C, ... of the ranking: ceil((B - c) / C) rows.
    bounds = [0]
    for c in range(blocks):
        bounds.append(bounds[-1] + (batch - c + blocks - 1) // blocks)
    return bounds


def inference_mode() -> bool:
    # The compiler cannot read the flag; a compiled graph has no autograd Function to spare anyway.
    return not torch.compiler.is_compiling() and torch.is_inference_mode_enabled()


@lru_cache(maxsize=64)
def _even_layout(steps: int, batch: int, blocks: int, inference: bool) -> tuple[Tensor, Tensor]:
    """The layout without lengths; cached, since building it costs ~20 µs a call (kernels only read it).

    Keyed by ``inference`` (whether inference mode is on): one built under inference mode is an inference
    tensor, and training's ``save_for_backward`` refuses it.
    """
    bounds = _bounds(batch, blocks)
    sizes = torch.tensor([bounds[c + 1] - bounds[c] for c in range(blocks)], dtype=torch.int64)
    return sizes.unsqueeze(1).expand(blocks, steps).contiguous(), torch.tensor(bounds, dtype=torch.int64)
