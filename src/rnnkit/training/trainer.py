"""The training loop shared by classifiers and language models.

``Trainer`` owns optimisation and bookkeeping; the ``Task`` (see ``task.py``) owns
data and loss. One ``fit()``:

1. seeds everything from ``config.seed`` (same seed, same history);
2. builds AdamW with decay on weight matrices only (``optim.py``) and a warm-up
   + decay schedule (``schedule.py``) sized from ``len(train_batches(0)) * epochs``;
3. per batch: ``task.train_step`` -> backward -> clip -> step -> schedule step;
4. evaluates on ``"valid"`` once per epoch, or every ``eval_every`` steps, with
   ``model.eval()`` under ``torch.no_grad()``, appending a record to the history,
   to ``out_dir/log.jsonl`` and as a summary line on stderr;
5. keeps an in-memory copy of the best weights (by ``task.monitor`` and
   ``task.mode``), calls ``save_best(out_dir / "best")`` on each improvement,
   stops after ``patience`` evaluations without one, and on return loads the best
   weights back into the model, which it leaves in eval mode.

A run also ends on ``max_time`` (wall clock since ``fit`` began, evaluation
included: the current step finishes and a final evaluation runs), on Ctrl-C
(no further evaluation; what was logged stays, the best weights are restored),
or on a non-finite loss or gradient norm (that update is skipped, so the weights
are never poisoned).

The trainer never moves tensors between devices: the task puts batches on the
model's device.

Under torchrun (``world``, see ``distributed.py``) each rank steps on its share of the
global batch through DistributedDataParallel; losses, stop decisions and evaluations
are shared so every rank takes the same steps, and rank 0 alone logs and saves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import clip_grad_norm_

from rnnkit.training.config import TrainConfig
from rnnkit.training.distributed import NullStream, World, current_world, reduce_step
from rnnkit.training.optim import make_optimizer
from rnnkit.training.progress import Progress, format_summary
from rnnkit.training.runlog import RunLog
from rnnkit.training.schedule import Horizon, make_scheduler
from rnnkit.training.seed import seed_everything
from rnnkit.training.task import StepResult, Task, check_task

__all__ = ["Trainer", "TrainResult", "StepResult", "Task"]

# Why a run ended (TrainResult.reason).
COMPLETED = "completed"
EARLY_STOPPING = "early_stopping"
MAX_TIME = "max_time"
INTERRUPTED = "interrupted"
NON_FINITE = "non_finite_loss"
# Steps to time before projecting how many fit in max_time (the first steps are slow to warm up).
HORIZON_MIN_STEPS = 20


@dataclass
class TrainResult:
    """What ``Trainer.fit`` returns.

    Attributes:
        history: one record per evaluation: ``epoch`` (1-based, the epoch it happened in),
            ``step``, ``train_loss``, ``train_accuracy`` (if the task counts ``correct``),
            ``valid_<metric>`` for each metric of ``task.evaluate``, ``elapsed`` (s),
            ``tokens_per_s``, ``lr`` (of the last update), ``grad_norm`` (mean pre-clip norm,
            when clipping) and ``improved``.
        best: the history record of the best evaluation, or None if none happened.
        best_epoch: its ``epoch``, or None.
        stopped_early: True unless all epochs ran (``reason == "completed"``).
        reason: "completed", "early_stopping", "max_time", "interrupted" or "non_finite_loss".
        steps: optimiser steps taken.
        elapsed: seconds ``fit`` took.
    """

    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_epoch: int | None
    stopped_early: bool
    reason: str
    steps: int = 0
    elapsed: float = 0.0


class _Window:
    """Training figures accumulated since the last evaluation."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.steps = 0
        self.loss_sum = 0.0
        self.examples = 0
        self.correct = 0
        self.counted = 0  # examples of the steps that reported `correct`
        self.tokens = 0
        self.seconds = 0.0
        self.grad_norm_sum = 0.0
        self.grad_norms = 0

    def add(self, loss: float, result: StepResult, seconds: float, grad_norm: float | None) -> None:
        self.steps += 1
        # Weighted by examples so a short last batch counts for what it holds.
        self.loss_sum += loss * result.examples
        self.examples += result.examples
        if result.correct is not None:
            self.correct += result.correct
            self.counted += result.examples
        self.tokens += result.tokens
        self.seconds += seconds
        if grad_norm is not None:
            self.grad_norm_sum += grad_norm
            self.grad_norms += 1

    @property
    def loss(self) -> float:
        return self.loss_sum / self.examples if self.examples else math.nan

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.counted if self.counted else None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def grad_norm(self) -> float | None:
        return self.grad_norm_sum / self.grad_norms if self.grad_norms else None


@dataclass
class _RunState:
    start: float
    epoch: int = 0
    step: int = 0
    total_steps: int | None = None
    train_seconds: float = 0.0
    last_lr: float = 0.0
    best_value: float | None = None
    best_record: dict[str, Any] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    bad_evals: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Fits ``model`` on ``task`` under ``config``; see the module docstring for the full behaviour.

    Args:
        model: the network; its parameters are what the optimiser updates.
        task: a ``Task`` (batches, loss, evaluation, monitor and mode).
        config: a ``TrainConfig``.
        out_dir: where ``log.jsonl`` (and ``best/`` via ``save_best``) go; None writes nothing.
        save_best: called with ``out_dir / "best"`` whenever the monitored metric improves,
            while the model holds the new best weights (e.g. to write a checkpoint).
        world: the processes training together (default: the process group joined, if any).
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        save_best: Callable[[Path], None] | None = None,
        world: World | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        check_task(task)
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        if save_best is not None and not callable(save_best):
            raise TypeError(f"save_best must be callable or None, got {save_best!r}")
        if save_best is not None and out_dir is None:
            raise ValueError("save_best needs out_dir: it is called with out_dir / 'best'")
        self.model = model
        self.task = task
        self.config = config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.save_best = save_best
        self.world = world if world is not None else current_world()

    # -- evaluation -----------------------------------------------------------
    def evaluate(self, split: str = "valid") -> dict[str, float]:
        """``task.evaluate(model, split)`` in eval mode without gradients; the model's mode is restored."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                metrics = self.task.evaluate(self.model, split)
        finally:
            self.model.train(was_training)
        if not isinstance(metrics, dict):
            raise TypeError(f"task.evaluate must return a dict of metrics, got {type(metrics).__name__}")
        if self.task.monitor not in metrics:
            raise KeyError(
                f"task.evaluate({split!r}) returned no {self.task.monitor!r} (the task's monitor); "
                f"got keys {sorted(metrics)}"
            )
        try:
            return {str(key): float(value) for key, value in metrics.items()}
        except (TypeError, ValueError) as error:
            raise TypeError(f"task.evaluate({split!r}) must return numbers, got {metrics!r}") from error

    # -- the run ------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train until the epochs run out or a stop condition fires; return the history and the best record."""
        config = self.config
        # Ranks draw different dropout masks; the weights they start from are rank 0's (DDP broadcasts them).
        seed_everything(config.seed + self.world.rank)
        self._train_model = self.world.wrap(self.model)
        self._optimizer = make_optimizer(self.model, config)
        self._parameters = [p for group in self._optimizer.param_groups for p in group["params"]]
        self._scheduler = None
        self._state = state = _RunState(start=time.monotonic())
        self._window = _Window()
        main = self.world.is_main
        self._log = RunLog(self.out_dir / "log.jsonl") if self.out_dir is not None and main else None
        self._progress = Progress(config.progress) if main else Progress(False, NullStream())
        try:
            reason = self._train_loop()
        except KeyboardInterrupt:
            # Stop where we are: no further evaluation, keep what was logged and the best weights.
            reason = INTERRUPTED
        finally:
            self._progress.end_epoch()
            self._train_model = self.model  # drops the DDP wrapper (and its gradient hooks)
        if state.best_state is not None:
            self.model.load_state_dict(state.best_state)
        self.model.eval()
        best = state.best_record
        return TrainResult(
            history=state.history,
            best=best,
            best_epoch=best["epoch"] if best is not None else None,
            stopped_early=reason != COMPLETED,
            reason=reason,
            steps=state.step,
            elapsed=time.monotonic() - state.start,
        )

    def _train_loop(self) -> str:
        config, state = self.config, self._state
        hook = getattr(self.task, "on_epoch_start", None)
        for epoch in range(config.epochs):
            # Checked after each step too; here it only spares starting an epoch with no time left.
            if epoch > 0 and self._out_of_time():
                return self._finish(MAX_TIME)
            state.epoch = epoch
            self.model.train()
            if hook is not None:
                hook(self.model, epoch)
            batches = self.task.train_batches(epoch)
            length = _length(batches)
            self.world.check_same_length(length)
            if self._scheduler is None:
                # Later epochs are assumed to be as long as the first.
                state.total_steps = length * config.epochs if length else None
                if config.max_steps is not None:
                    state.total_steps = min(state.total_steps or config.max_steps, config.max_steps)
                self._horizon = Horizon(state.total_steps)
                self._scheduler = make_scheduler(self._optimizer, config, state.total_steps, self._horizon)
            self._progress.start_epoch(epoch, config.epochs, length)
            steps_before = state.step
            for batch in batches:
                if not self._step(batch):
                    return self._finish(NON_FINITE, evaluate=False)
                if config.eval_every is not None and state.step % config.eval_every == 0 and self._evaluate():
                    return self._finish(EARLY_STOPPING)
                if self._out_of_time():
                    return self._finish(MAX_TIME)
            if state.step == steps_before:
                raise ValueError(f"task.train_batches({epoch}) yielded no batches")
            self._progress.end_epoch()
            if config.eval_every is None and self._evaluate():
                return self._finish(EARLY_STOPPING)
        return self._finish(COMPLETED)

    def _finish(self, reason: str, evaluate: bool = True) -> str:
        """Close the bar and, unless told not to, evaluate steps taken since the last evaluation."""
        self._progress.end_epoch()
        if evaluate and self._window.steps > 0:
            self._evaluate()
        return reason

    def _out_of_time(self) -> bool:
        """The time budget, or the step budget, is spent."""
        limit, steps = self.config.max_time, self.config.max_steps
        if steps is not None and self._state.step >= steps:
            return True
        return limit is not None and self._elapsed() >= limit

    def _elapsed(self) -> float:
        """Seconds since ``fit`` began; with several ranks the slowest one's, so all take the same decisions."""
        return self.world.all_max(time.monotonic() - self._state.start)

    def _step(self, batch: Any) -> bool:
        """One optimiser update; False (and no update) if the loss or gradient norm is not finite."""
        state, window = self._state, self._window
        started = time.perf_counter()
        self._optimizer.zero_grad(set_to_none=True)
        with self.world.autocast_context():
            result = self.task.train_step(self._train_model, batch)
        if not isinstance(result, StepResult):
            raise TypeError(f"task.train_step must return a StepResult, got {type(result).__name__}")
        result.validate()
        # .item() synchronises with the device, which also makes the step timing honest. With several ranks: the
        # global figures, and the scale that makes the averaged gradient the global batch's.
        totals = reduce_step(self.world, batch, result)
        loss, result = totals.loss, totals.result
        if not math.isfinite(loss):
            return False
        (result.loss if totals.scale == 1.0 else result.loss * totals.scale).backward()
        grad_norm = None
        if self.config.clip_norm is not None:
            grad_norm = float(clip_grad_norm_(self._parameters, self.config.clip_norm))
            if not math.isfinite(grad_norm):
                return False
        state.last_lr = float(self._optimizer.param_groups[0]["lr"])
        self._optimizer.step()
        state.step += 1
        self._fit_horizon_to_time()
        self._scheduler.step()
        seconds = time.perf_counter() - started
        state.train_seconds += seconds
        window.add(loss, result, seconds, grad_norm)
        self._progress.step(window.loss, window.accuracy, window.tokens_per_s, self._seconds_left())
        return True

    def _fit_horizon_to_time(self) -> None:
        """With ``max_time``, end the decay at the step the budget is projected to allow, if that comes first."""
        limit, state = self.config.max_time, self._state
        if limit is None or state.step < HORIZON_MIN_STEPS:
            return
        elapsed = self._elapsed()
        projected = max(state.step + 1, int(state.step * limit / max(elapsed, 1e-9)))
        if state.total_steps is None or projected < state.total_steps:
            self._horizon.total_steps = projected

    def _seconds_left(self) -> float | None:
        """Estimated training time left for the run (evaluation excluded), capped by max_time."""
        state = self._state
        left = None
        if state.total_steps is not None and state.step:
            left = state.train_seconds / state.step * max(0, state.total_steps - state.step)
        if self.config.max_time is not None:
            budget = max(0.0, self.config.max_time - (time.monotonic() - state.start))
            left = budget if left is None else min(left, budget)
        return left

    def _evaluate(self) -> bool:
        """Evaluate on "valid", record it, track the best; True if patience has run out."""
        state, window, monitor = self._state, self._window, self.task.monitor
        metrics = self.world.on_main(lambda: self.evaluate("valid"))
        record: dict[str, Any] = {"epoch": state.epoch + 1, "step": state.step, "train_loss": window.loss}
        if window.accuracy is not None:
            record["train_accuracy"] = window.accuracy
        record.update({f"valid_{key}": value for key, value in metrics.items()})
        record.update(
            elapsed=time.monotonic() - state.start, tokens_per_s=window.tokens_per_s, lr=state.last_lr,
        )
        if window.grad_norm is not None:
            record["grad_norm"] = window.grad_norm
        improved = self._improves(metrics[monitor])
        record["improved"] = improved
        state.history.append(record)
        if self._log is not None:
            self._log.write(record)
        self._progress.summary(format_summary(record, f"valid_{monitor}", improved))
        window.reset()
        if improved:
            state.best_value = metrics[monitor]
            state.best_record = record
            state.best_state = {key: value.detach().clone() for key, value in self.model.state_dict().items()}
            state.bad_evals = 0
            if self.save_best is not None and self.world.is_main:
                self.save_best(self.out_dir / "best")
        else:
            state.bad_evals += 1
        patience = self.config.patience
        return patience is not None and state.bad_evals >= patience

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        best = self._state.best_value
        if best is None:
            return True
        return value > best if self.task.mode == "max" else value < best


def _length(batches: Any) -> int | None:
    """``len(batches)`` if the iterable has one (a generator does not)."""
    try:
        return len(batches)
    except TypeError:
        return None
