"""What the trainer needs from a problem: the ``Task`` protocol and the ``StepResult`` of one batch.

The trainer owns optimisation (gradients, clipping, schedule, stopping, best
weights); a task owns everything about the data and the loss. That split lets
one trainer serve a sentence classifier (one label per sequence) and a language
model (one target per token, hidden state carried between batches).

Counting units, so history and progress read the same for both kinds of task:

* ``examples``: the units the loss is averaged over and ``correct`` is out of:
  sentences for a classifier, predicted tokens for a language model;
* ``tokens``: input tokens processed, used only for the tokens/s throughput.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn


@dataclass
class StepResult:
    """Outcome of ``Task.train_step`` on one batch.

    Attributes:
        loss: scalar mean loss over the batch's ``examples``, still attached to the graph.
        tokens: input tokens in the batch (throughput only).
        examples: units the loss is a mean over (sentences, or predicted tokens for an LM).
        correct: how many of ``examples`` were predicted right, if the task measures it.
    """

    loss: torch.Tensor
    tokens: int
    examples: int
    correct: int | None = None

    def validate(self) -> None:
        """Raise with a message naming the field if the task returned something unusable."""
        if not isinstance(self.loss, torch.Tensor) or self.loss.numel() != 1:
            raise TypeError(f"StepResult.loss must be a scalar tensor, got {self.loss!r}")
        if not self.loss.requires_grad:
            raise ValueError(
                "StepResult.loss does not require grad: was it computed under torch.no_grad() or detached?"
            )
        for name in ("tokens", "examples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"StepResult.{name} must be a non-negative int, got {value!r}")
        if self.examples == 0:
            raise ValueError("StepResult.examples must be >= 1: an empty batch has no mean loss")
        if self.correct is not None and (
            isinstance(self.correct, bool) or not isinstance(self.correct, int)
            or not 0 <= self.correct <= self.examples
        ):
            raise ValueError(
                f"StepResult.correct must be an int in [0, examples={self.examples}], got {self.correct!r}"
            )


@runtime_checkable
class Task(Protocol):
    """A trainable problem: batches, a loss, and an evaluation.

    Attributes:
        monitor: key of ``evaluate``'s result that decides the best model and early stopping,
            e.g. ``"accuracy"`` or ``"bits_per_char"``.
        mode: ``"max"`` if a larger ``monitor`` is better, ``"min"`` if smaller is.
    """

    monitor: str
    mode: str

    def train_batches(self, epoch: int) -> Iterable[Any]:
        """A finite iterable of batches for ``epoch`` (0-based); give it ``len()`` for progress and ETA.

        A task that shuffles should derive its order from ``epoch`` and its own seeded
        generator so runs repeat exactly.
        """
        ...

    def train_step(self, model: nn.Module, batch: Any) -> StepResult:
        """Forward one batch and return its mean loss; the trainer does backward and the update.

        The trainer has already called ``model.train()``. A task that carries state
        between batches (an LM's hidden state) must detach it here.
        """
        ...

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Metrics on ``split`` (``"valid"`` or ``"test"``); must contain ``monitor``.

        Called by the trainer with ``model.eval()`` and under ``torch.no_grad()``.
        """
        ...

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        """Optional hook before each epoch's batches (an LM resets its carried hidden state).

        The trainer calls it only if the task defines it.
        """
        ...


def check_task(task: object) -> None:
    """Fail early, naming what is missing, if ``task`` does not follow the ``Task`` protocol."""
    for name in ("train_batches", "train_step", "evaluate"):
        if not callable(getattr(task, name, None)):
            raise TypeError(f"task must define a method {name}(), {type(task).__name__} does not")
    monitor = getattr(task, "monitor", None)
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"task.monitor must be a non-empty str naming a metric, got {monitor!r}")
    mode = getattr(task, "mode", None)
    if mode not in ("max", "min"):
        raise ValueError(f"task.mode must be 'max' or 'min', got {mode!r}")
    hook = getattr(task, "on_epoch_start", None)
    if hook is not None and not callable(hook):
        raise TypeError(f"task.on_epoch_start must be callable if given, got {hook!r}")
