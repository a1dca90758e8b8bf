"""The reference back end: a Python loop over the cell's step. The readable ground truth.

It supports every cell and configuration, and it is the back end that records the
per-step trace (``layer.trace``). Other back ends are tested against it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.extras import at_step
from rnnkit.engine.registry import register_backend
from rnnkit.engine.stack import run_stack
from rnnkit.lengths import step_mask


def run_direction(layer, k: int, d: int, x: Tensor, h0, lengths: Tensor | None, record=None):
    """One layer, one direction, over (T, B, F) input starting at step 0 for every sequence."""
    cell = layer.cell_for(k, d)
    p = layer.params_for(k, d)
    steps, batch = x.shape[0], x.shape[1]
    state = h0 if h0 is not None else cell.initial_state(batch, x)
    # Past the longest sequence nothing changes: stop there and pad with zeros.
    active = steps if lengths is None else int(lengths.max())
    mask = None if lengths is None else step_mask(lengths, active, x.device)
    # Recurrent-dropout and zoneout masks for the whole sequence, drawn before the loop (cells.extras).
    masks = cell.sample_masks(active, batch, x, layer.training)
    outputs, gates = [], []
    for t, x_t in enumerate(x[:active].unbind(0)):
        step_record = {} if record is not None else None
        p_t = {**p, **at_step(masks, t)} if masks else p
        h, new_state = cell.step(x_t, state, p_t, step_record)
        if mask is not None:
            valid = mask[t]
            new_state = tuple(torch.where(valid, n, s) for n, s in zip(new_state, state, strict=True))
            h = torch.where(valid, h, torch.zeros_like(h))
            if step_record is not None:
                step_record = {name: torch.where(valid, v, torch.zeros_like(v)) for name, v in step_record.items()}
        if step_record is not None:
            step_record["h"] = h
            if len(new_state) > 1:
                step_record["c"] = new_state[1] if mask is None else torch.where(mask[t], new_state[1], 0.0)
            gates.append(step_record)
        outputs.append(h)
        state = new_state
    out = torch.stack(outputs)
    if active < steps:
        out = torch.cat([out, out.new_zeros(steps - active, *out.shape[1:])])
    if record is not None:
        for name in gates[0]:
            series = torch.stack([g[name] for g in gates])
            if active < steps:
                series = torch.cat([series, series.new_zeros(steps - active, *series.shape[1:])])
            record[name] = series.transpose(0, 1)  # (B, T, ·)
    return out, tuple(state)


class ReferenceBackend:
    name = "reference"
    autotune = False  # the equations step by step: never the fastest, not worth timing

    def unsupported(self, layer, x, lengths):
        return None

    def run(self, layer, x, hx, lengths, recorder=None):
        return run_stack(layer, x, hx, lengths, run_direction, recorder)


REFERENCE = register_backend(ReferenceBackend(), priority=0)
