"""Learning-rate schedule: linear warm-up, then cosine, linear or no decay; or ULMFiT's slanted triangle.

The schedule is a multiplier on the optimiser's base learning rate, so it is a
``torch.optim.lr_scheduler.LambdaLR`` over a pure function of the step number
(``lr_factor``), which keeps the shape easy to test and to plot.

Step ``s`` counts optimiser steps already taken (``LambdaLR`` evaluates the
factor for ``s = 0`` before the first step). Warm-up over ``w`` steps uses
``(s + 1) / w`` so the very first update already moves the weights (a factor of
0 would waste a step) and step ``w - 1`` runs at the full rate. Decay then runs
from the full rate at step ``w`` towards 0 at step ``total_steps``.

``stlr`` is the slanted triangular schedule of Howard & Ruder (2018): the factor
rises linearly from ``1/STLR_RATIO`` at step 0 to 1 at step ``w`` (the warm-up is
the paper's ``cut``), then falls linearly back to ``1/STLR_RATIO`` at step
``total_steps``. It never reaches 0, so a run fine-tuned this way keeps learning to
its last step, a little.
"""

from __future__ import annotations

import math
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from rnnkit.training.config import SCHEDULES, TrainConfig

# ULMFiT's ratio of the peak rate to the lowest one (Howard & Ruder 2018, section 3.2).
STLR_RATIO = 32.0


def lr_factor(step: int, *, warmup_steps: int, total_steps: int | None, schedule: str) -> float:
    """Multiplier of the base learning rate for the update numbered ``step`` (0-based).

    ``total_steps=None`` (length unknown) keeps the full rate after warm-up, since
    there is no end to decay towards.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps!r}")
    if schedule == "stlr":
        return _slanted_triangle(step, warmup_steps, total_steps)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant" or total_steps is None:
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _slanted_triangle(step: int, cut: int, total_steps: int | None) -> float:
    if step < cut:
        rise = step / cut
    elif total_steps is None:
        rise = 1.0
    else:
        rise = max(0.0, 1.0 - (step - cut) / max(1, total_steps - cut))
    return (1.0 + rise * (STLR_RATIO - 1.0)) / STLR_RATIO


class Horizon:
    """The step the decay ends at; mutable so a time budget can move it while training runs.

    With ``max_time`` the run may end before its epochs do: the trainer then projects
    how many steps fit in the budget and moves the horizon there, so the learning rate
    still reaches the end of its decay when time runs out (never past it).
    """

    def __init__(self, total_steps: int | None):
        self.total_steps = total_steps

    def __call__(self, step: int, *, warmup_steps: int, schedule: str) -> float:
        return lr_factor(step, warmup_steps=warmup_steps, total_steps=self.total_steps, schedule=schedule)


def make_scheduler(optimizer: Optimizer, config: TrainConfig, total_steps: int | None,
                   horizon: Horizon | None = None) -> LambdaLR:
    """A ``LambdaLR`` implementing ``config.warmup`` and ``config.schedule`` over ``total_steps`` updates.

    Call ``scheduler.step()`` once after every ``optimizer.step()``. Pass a ``Horizon``
    to move the end of the decay later (it then replaces ``total_steps`` for the decay).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if total_steps is not None and (isinstance(total_steps, bool) or not isinstance(total_steps, int)
                                    or total_steps < 1):
        raise ValueError(f"total_steps must be a positive integer or None, got {total_steps!r}")
    warmup = config.warmup_steps(total_steps)
    if total_steps is not None:
        # A warm-up longer than the run would never reach the peak rate.
        warmup = min(warmup, total_steps)
    # partial of a module-level function (not a lambda) keeps the scheduler picklable.
    if horizon is not None:
        return LambdaLR(optimizer, partial(horizon, warmup_steps=warmup, schedule=config.schedule))
    factor = partial(_factor, warmup_steps=warmup, total_steps=total_steps, schedule=config.schedule)
    return LambdaLR(optimizer, factor)


def _factor(step: int, *, warmup_steps: int, total_steps: int | None, schedule: str) -> float:
    return lr_factor(step, warmup_steps=warmup_steps, total_steps=total_steps, schedule=schedule)
