"""The knobs of one training run, as a typed dataclass a CLI can be generated from.

Every field is a ``rnnkit.config_fields.help_field`` so a command-line front end can
turn the dataclass into flags without repeating the documentation. Values are
checked in ``__post_init__`` so a bad setting fails before any data is loaded,
with a message that names the field and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rnnkit.config_fields import help_field as _help

SCHEDULES = ("cosine", "linear", "constant", "stlr")
# Mixed precision of training forwards (``training.distributed.setup_world``, ``--autocast``): none, or bfloat16.
AUTOCAST = (None, "bf16")


@dataclass
class TrainConfig:
    """Optimisation, stopping and logging settings shared by classifiers and language models.

    ``warmup`` has two readings, chosen by its size so one field serves both short
    classifier runs (where a fraction scales with the data) and long LM runs (where
    a fixed number of steps is what one wants to say):

    * ``0 <= warmup < 1``: a fraction of the run's total optimiser steps;
    * ``warmup >= 1``: a whole number of optimiser steps (``50`` or ``50.0``).

    ``patience`` counts evaluations without improvement. With ``eval_every=None``
    there is one evaluation per epoch, so it counts epochs.
    """

    epochs: int = _help("Maximum number of passes over the training data.", default=20)
    batch_size: int = _help("Examples (or sequences) per optimiser step.", default=32)
    lr: float = _help("Peak learning rate of AdamW, reached at the end of warm-up.", default=2e-3)
    weight_decay: float = _help(
        "AdamW decoupled weight decay on weight matrices (not biases, norms or embeddings).", default=0.01)
    warmup: float = _help(
        "Linear warm-up: a fraction of total steps if < 1, else a whole number of steps.", default=0.05)
    schedule: str = _help(
        f"Learning-rate decay after warm-up: one of {', '.join(SCHEDULES)} (stlr: ULMFiT's slanted triangle, "
        "from lr/32 up to lr over the warm-up, then linearly back to lr/32).", default="cosine")
    clip_norm: float | None = _help(
        "Clip the global gradient L2 norm to this value; None disables clipping.", default=1.0)
    patience: int | None = _help(
        "Stop after this many evaluations without improvement of the monitored metric; None disables.", default=3)
    seed: int = _help("Seed for python, numpy and torch random number generators.", default=0)
    max_time: float | None = _help(
        "Wall-clock budget in seconds; stop after the current step, then evaluate. None: no limit.", default=None)
    max_steps: int | None = _help(
        "Stop after this many optimiser steps (the decay then ends there); None: no limit.", default=None)
    eval_every: int | None = _help(
        "Evaluate every N optimiser steps instead of once per epoch (useful for long LM epochs).", default=None)
    progress: bool = _help("Show a progress bar when stderr is a terminal.", default=True)
    checkpoint_every: str = _help(
        "How often to save the resumable training state: 'epoch', N optimiser steps ('200'), "
        "N seconds ('5s'), or 'none' (only when interrupted by SIGINT/SIGTERM).", default="epoch")

    def __post_init__(self) -> None:
        _check_int("epochs", self.epochs, minimum=1)
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_number("lr", self.lr)
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        _check_number("weight_decay", self.weight_decay)
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        _check_number("warmup", self.warmup)
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0 (a fraction < 1 or a step count >= 1), got {self.warmup!r}")
        if self.warmup >= 1 and float(self.warmup) != int(self.warmup):
            # 2.5 is neither a fraction nor a step count: refuse rather than guess.
            raise ValueError(f"warmup >= 1 is a number of steps and must be whole, got {self.warmup!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.clip_norm is not None:
            _check_number("clip_norm", self.clip_norm)
            if self.clip_norm <= 0:
                raise ValueError(f"clip_norm must be > 0 or None, got {self.clip_norm!r}")
        if self.patience is not None:
            _check_int("patience", self.patience, minimum=1)
        _check_int("seed", self.seed, minimum=0)
        if self.max_steps is not None:
            _check_int("max_steps", self.max_steps, minimum=1)
        if self.max_time is not None:
            _check_number("max_time", self.max_time)
            if self.max_time <= 0:
                raise ValueError(f"max_time must be > 0 seconds or None, got {self.max_time!r}")
        if self.eval_every is not None:
            _check_int("eval_every", self.eval_every, minimum=1)
        if not isinstance(self.progress, bool):
            raise TypeError(f"progress must be a bool, got {self.progress!r}")
        self.checkpoint_schedule()

    def checkpoint_schedule(self) -> tuple[str, float | int | None]:
        """``checkpoint_every`` as ``("epoch", None)``, ``("steps", n)``, ``("seconds", s)`` or ``("none", None)``."""
        text = self.checkpoint_every
        if not isinstance(text, str):
            raise TypeError(f"checkpoint_every must be a str like 'epoch', '200' or '5s', got {text!r}")
        text = text.strip().lower()
        if text in ("epoch", "none"):
            return text, None
        try:
            if text.endswith("s"):
                seconds = float(text[:-1])
                if math.isfinite(seconds) and seconds >= 0:
                    return "seconds", seconds
            elif int(text) >= 1:
                return "steps", int(text)
        except ValueError:
            pass
        raise ValueError(f"checkpoint_every must be 'epoch', 'none', a step count >= 1 ('200') or seconds "
                         f"('5s'), got {self.checkpoint_every!r}")

    def warmup_steps(self, total_steps: int | None) -> int:
        """Number of warm-up steps for a run of ``total_steps`` optimiser steps.

        A fractional warm-up needs the total; when the total is unknown (an
        iterable without ``len``) only a step-count warm-up can be honoured.
        """
        if self.warmup >= 1:
            return int(self.warmup)
        if self.warmup == 0:
            return 0
        if total_steps is None:
            raise ValueError(
                f"warmup={self.warmup!r} is a fraction of total steps, but the total is unknown "
                "(train_batches has no len()); give warmup as a whole number of steps instead"
            )
        return int(round(self.warmup * total_steps))


def _check_int(name: str, value, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")


def _check_number(name: str, value) -> None:
    # bool is an int subclass; True as a learning rate is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
