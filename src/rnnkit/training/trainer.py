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
included: the current step finishes and a final evaluation runs), on SIGINT or
SIGTERM (the current step finishes, the training state is saved to ``state_path``
and ``reason`` is "interrupted"; a second Ctrl-C, or a ``KeyboardInterrupt`` raised
inside a step, stops at once without saving), or on a non-finite loss or gradient
norm (the run has diverged: that update is skipped, so the weights are never
poisoned, and no further evaluation runs). An evaluation with a non-finite metric
never counts as an improvement, so non-finite weights are never kept as the best.

Resume: with ``state_path``, the full training state (``state_dict()``: weights,
optimiser, schedule, every random generator, the position inside the epoch, the
task's own state, counters, history, best weights, patience) is written there
atomically every ``config.checkpoint_every`` (an epoch, N steps or N seconds; a
time-based cadence also waits 50 times the last save's duration, so saving stays
under ~2% of the run on a slow disk).
``load_state_dict(state)`` before ``fit()`` continues that run; a run resumed from
any checkpoint ends with the same weights and history (timings apart) as one never
stopped. The exception is ``max_time``: the budget and the decay horizon fitted to
it (``_fit_horizon_to_time``) follow the wall clock, which no checkpoint can replay.
The elapsed time is saved, so the budget still counts the time already spent, but
time lost after the last checkpoint is spent again, and the projected horizon is
re-estimated from the resumed run's pace.

The trainer never moves tensors between devices: the task puts batches on the
model's device.

Under torchrun (``world``, see ``distributed.py``) each rank steps on its share of the
global batch through DistributedDataParallel; losses, stop decisions and evaluations
are shared so every rank takes the same steps, and rank 0 alone logs and saves. A signal to any rank stops
all at the same step; the saved state holds each rank's generators and task state, every rank loads it
before DDP wraps the model, and it resumes only with as many ranks as saved it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit.training.config import TrainConfig
from rnnkit.training.distributed import NullStream, World, current_world, reduce_step
from rnnkit.training.optim import make_optimizer
from rnnkit.training.progress import Progress, format_summary
from rnnkit.training.runlog import RunLog
from rnnkit.training.schedule import Horizon, make_scheduler
from rnnkit.training.seed import seed_everything
from rnnkit.training.signals import StopRequests
from rnnkit.training.sparse import clip_grad_norm
from rnnkit.training.state import load_state, rng_state, save_state, set_rng_state
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
# A time-based checkpoint waits at least this many times as long as the last save took, so saving stays
# under ~2% of the run even on a slow disk (with "5s", a save slower than 0.1 s spaces them out).
SAVE_SPACING = 50
# Settings that may differ between a run and its resumption (they change no number).
RESUMABLE_CHANGES = ("progress", "checkpoint_every")


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
        elapsed: seconds ``fit`` took (with a resumed run: the time before the resumption included).
        checkpoint: the training state saved last (a resumable run), or None.
        signal: the signal number that interrupted the run, if one did.
    """

    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    best_epoch: int | None
    stopped_early: bool
    reason: str
    steps: int = 0
    elapsed: float = 0.0
    checkpoint: Path | None = None
    signal: int | None = None


@dataclass
class _Agreed:
    """What the ranks agreed on in a step's one all-reduce, for the checks after it (the maxima over ranks)."""

    elapsed: float  # the slowest rank's seconds since ``fit`` began
    stop: float  # a signal number asked of any rank, else 0
    checkpoint_due: bool  # any rank's clock says a time-scheduled save is due


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

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vars(self).update(state)

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
    batch: int = 0  # batches of `epoch` already trained on
    epoch_done: bool = False  # `epoch` is over, its evaluation included
    step: int = 0
    total_steps: int | None = None
    horizon: int | None = None
    train_seconds: float = 0.0
    last_lr: float = 0.0
    best_value: float | None = None
    best_record: dict[str, Any] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    bad_evals: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch_rng: dict[str, Any] | None = None  # the generators as `epoch` began, before its batches were drawn
    checkpoint: Path | None = None
    last_save: float = 0.0  # time.monotonic() of the last training-state checkpoint
    save_seconds: float = 0.0  # how long it took

    # Saved by Trainer.state_dict(); the rest (start, checkpoint, last_save) belongs to one process.
    SAVED = ("epoch", "batch", "epoch_done", "step", "total_steps", "horizon", "train_seconds", "last_lr", "best_value",
             "best_record", "bad_evals", "history")


class Trainer:
    """Fits ``model`` on ``task`` under ``config``; see the module docstring for the full behaviour.

    Args:
        model: the network; its parameters are what the optimiser updates.
        task: a ``Task`` (batches, loss, evaluation, monitor and mode).
        config: a ``TrainConfig``.
        out_dir: where ``log.jsonl`` (and ``best/`` via ``save_best``) go; None writes nothing.
        save_best: called with ``out_dir / "best"`` whenever the monitored metric improves,
            while the model holds the new best weights (e.g. to write a checkpoint).
        state_path: file the resumable training state is written to every ``config.checkpoint_every``
            and when SIGINT/SIGTERM stops the run; None saves none. With several ranks, rank 0 writes it.
        world: the processes training together (default: the process group joined, if any).
        param_groups: ``param_groups(model)`` gives the optimiser's parameter groups (each with its own ``lr``,
            e.g. discriminative fine-tuning's); the schedule scales every group's rate alike. Default: one rate.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        save_best: Callable[[Path], None] | None = None,
        state_path: str | Path | None = None,
        world: World | None = None,
        param_groups: Callable[[nn.Module], list[dict]] | None = None,
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
        self.state_path = Path(state_path) if state_path is not None else None
        self._resume: dict[str, Any] | None = None
        self.world = world if world is not None else current_world()
        self.param_groups = param_groups

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

    # -- saving and resuming ----------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything ``fit`` needs to continue this run exactly: valid between steps of a running ``fit``.

        Under torchrun this gathers every rank's generators and task state: call it on every rank at once.
        """
        state = self._state
        saved = {name: getattr(state, name) for name in _RunState.SAVED}
        saved["elapsed"] = time.monotonic() - state.start
        task_state = getattr(self.task, "state_dict", None)
        task_state = task_state() if callable(task_state) else None
        rng = {"now": rng_state(), "epoch_start": state.epoch_rng}
        # Under torchrun the generators and the task's state (an LM's carried hidden state) are each rank's own.
        ranks = self.world.all_gather({"rng": rng, "task": task_state}) if self.world.distributed else None
        return {
            "config": asdict(self.config),
            "trainer": saved,
            "window": self._window.state_dict(),
            "model": self.model.state_dict(),
            "optimizer": self._optimizer.state_dict(),
            "scheduler": self._scheduler.state_dict() if self._scheduler is not None else None,
            "best_model": state.best_state,
            "task": task_state,
            "rng": rng,
            "world_size": self.world.size,
            "ranks": ranks,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the run ``state`` was saved from at the next ``fit()``; the config must match it."""
        saved = state.get("config") if isinstance(state, dict) else None
        if not isinstance(saved, dict):
            raise ValueError("not a training state: it holds no 'config'")
        current = asdict(self.config)
        changed = sorted(key for key in current.keys() | saved.keys()
                         if key not in RESUMABLE_CHANGES and current.get(key) != saved.get(key))
        if changed:
            detail = ", ".join(f"{key} (saved {saved.get(key)!r}, now {current.get(key)!r})" for key in changed)
            raise ValueError(f"cannot resume with different training settings: {detail}")
        size = state.get("world_size", 1)
        if size != self.world.size:
            raise ValueError(f"cannot resume with {self.world.size} process(es) a run saved by {size}: each process's "
                             f"random generators and data position are its own; resume it with {size}")
        if size > 1:
            # This rank's own generators and task state (the rest is the same on every rank).
            mine = state["ranks"][self.world.rank]
            state = {**state, "rng": mine["rng"], "task": mine["task"]}
        if state.get("task") is not None and not callable(getattr(self.task, "load_state_dict", None)):
            raise TypeError(f"the saved run has task state, but {type(self.task).__name__} has no load_state_dict()")
        self._resume = state

    def load_state(self, path: str | Path) -> None:
        """``load_state_dict`` of the file at ``path`` (written by a run with ``state_path``)."""
        self.load_state_dict(load_state(path))

    def _save_state(self) -> None:
        started = time.monotonic()
        if self.state_path is not None:
            state = self.state_dict()  # a collective under torchrun: every rank takes part
            if self.world.is_main:
                save_state(self.state_path, state)
            # The others go on once the file is complete, so a rank that stops next never sees a stale one.
            self.world.barrier()
            self._state.checkpoint = self.state_path
        self._state.last_save = time.monotonic()
        self._state.save_seconds = self._state.last_save - started

    def _checkpoint_due(self, epoch_end: bool) -> bool:
        kind, every = self.config.checkpoint_schedule()
        if self.state_path is None or kind == "none":
            return False
        if kind == "epoch":
            return epoch_end
        if kind == "steps":
            return not epoch_end and self._state.step % every == 0
        if self._agreed is not None and not epoch_end:
            return self._agreed.checkpoint_due
        due = not epoch_end and self._due_by_clock()
        # Each rank has its own clock: one due is enough, so all save (a collective) at the same step.
        return self.world.all_max(float(due)) > 0 if self.world.distributed else due

    def _due_by_clock(self) -> bool:
        """With ``checkpoint_every`` in seconds, whether this rank's clock says a save is due."""
        kind, every = self.config.checkpoint_schedule()
        if self.state_path is None or kind != "seconds":
            return False
        wait = max(every, SAVE_SPACING * self._state.save_seconds)
        return time.monotonic() - self._state.last_save >= wait

    # -- the run ------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train until the epochs run out or a stop condition fires; return the history and the best record."""
        config = self.config
        # Ranks draw different dropout masks; the weights they start from are rank 0's (DDP broadcasts them).
        seed_everything(config.seed + self.world.rank)
        groups = self.param_groups(self.model) if self.param_groups is not None else None
        self._optimizer = make_optimizer(self.model, config, groups)
        self._parameters = [p for group in self._optimizer.param_groups for p in group["params"]]
        self._scheduler = None
        self._state = state = _RunState(start=time.monotonic())
        self._window = _Window()
        resume, self._resume = self._resume, None
        if resume is not None:
            self._restore(resume)
        # After the restore: every rank holds the saved weights before DDP broadcasts rank 0's.
        self._train_model = self.world.wrap(self.model)
        main = self.world.is_main
        self._log = RunLog(self.out_dir / "log.jsonl") if self.out_dir is not None and main else None
        if self._log is not None:
            # A resumed run's log is its saved history: records written after the checkpoint are redone.
            for record in state.history:
                self._log.write(record)
        self._progress = Progress(config.progress) if main else Progress(False, NullStream())
        state.last_save = time.monotonic()
        self._stop = StopRequests()
        self._signal: int | None = None
        self._agreed: _Agreed | None = None  # with several ranks: this step's shared figures (see ``_step``)
        try:
            with self._stop:
                reason = self._train_loop(resume)
        except KeyboardInterrupt:
            # Mid-step: the state is inconsistent, so nothing is saved; the last checkpoint stays.
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
            checkpoint=state.checkpoint,
            signal=self._signal if self._signal is not None else self._stop.requested,
        )

    def _restore(self, resume: dict[str, Any]) -> None:
        """Put back what ``state_dict`` saved, except what ``_train_loop`` restores as the epoch starts."""
        state = self._state
        for name, value in resume["trainer"].items():
            if name in _RunState.SAVED:
                setattr(state, name, value)
        state.start = time.monotonic() - resume["trainer"]["elapsed"]
        state.epoch_rng = resume["rng"]["epoch_start"]
        self._window.load_state_dict(resume["window"])
        self.model.load_state_dict(resume["model"])
        self._optimizer.load_state_dict(resume["optimizer"])
        state.best_state = resume["best_model"]

    def _train_loop(self, resume: dict[str, Any] | None) -> str:
        config, state = self.config, self._state
        hook = getattr(self.task, "on_epoch_start", None)
        first = state.epoch + 1 if state.epoch_done else state.epoch
        for epoch in range(first, config.epochs):
            resuming = resume is not None and epoch == first
            skip = state.batch if resuming and not state.epoch_done else 0
            # Checked after each step too; here it only spares starting an epoch with no time left.
            if epoch > 0 and skip == 0 and self._out_of_time():
                return self._finish(MAX_TIME)
            state.epoch, state.batch, state.epoch_done = epoch, 0, False
            if skip:
                # Mid-epoch: draw this epoch's batches from the generators as they were when it first began,
                # skip those already trained on, then continue from the generators as they were saved.
                set_rng_state(state.epoch_rng)
            elif resuming:
                set_rng_state(resume["rng"]["now"])
                # Before the epoch hook, which resets what a task carries between epochs.
                self._load_task_state(resume)
            if not skip:
                state.epoch_rng = rng_state()
            self.model.train()
            if hook is not None:
                hook(self.model, epoch)
            batches = self.task.train_batches(epoch)
            length = _length(batches)
            self.world.check_same_length(length)
            if self._scheduler is None:
                self._make_scheduler(length, resume)
            if skip:
                self._load_task_state(resume)
            batches = iter(batches)
            for _ in range(skip):
                if next(batches, None) is None:
                    raise ValueError(f"cannot resume: task.train_batches({epoch}) yields fewer than the {skip} "
                                     "batches the saved run had trained on (is it the same data?)")
                state.batch += 1
            if skip:
                set_rng_state(resume["rng"]["now"])
            self._progress.start_epoch(epoch, config.epochs, length)
            for batch in batches:
                if not self._step(batch):
                    return self._finish(NON_FINITE, evaluate=False)
                state.batch += 1
                if config.eval_every is not None and state.step % config.eval_every == 0 and self._evaluate():
                    return self._finish(EARLY_STOPPING)
                if self._out_of_time():
                    return self._finish(MAX_TIME)
                if self._stop_agreed():
                    return self._interrupted()
                if self._checkpoint_due(epoch_end=False):
                    self._save_state()
                self._agreed = None  # spent: later checks (epoch end, next epoch) ask the ranks afresh
            if state.batch == 0:
                raise ValueError(f"task.train_batches({epoch}) yielded no batches")
            self._progress.end_epoch()
            if config.eval_every is None and self._evaluate():
                return self._finish(EARLY_STOPPING)
            state.epoch_done = True
            if self._stop_agreed():
                return self._interrupted()
            if self._checkpoint_due(epoch_end=True):
                self._save_state()
        return self._finish(COMPLETED)

    def _load_task_state(self, resume: dict[str, Any]) -> None:
        if resume["task"] is not None:
            self.task.load_state_dict(resume["task"])

    def _make_scheduler(self, length: int | None, resume: dict[str, Any] | None) -> None:
        config, state = self.config, self._state
        if resume is None:
            # Later epochs are assumed to be as long as the first.
            state.total_steps = length * config.epochs if length else None
            if config.max_steps is not None:
                state.total_steps = min(state.total_steps or config.max_steps, config.max_steps)
            state.horizon = state.total_steps
        # A resumed run keeps the totals it was planned with, even if it resumes in an epoch of another length.
        self._horizon = Horizon(state.horizon)
        self._scheduler = make_scheduler(self._optimizer, config, state.total_steps, self._horizon)
        if resume is not None and resume["scheduler"] is not None:
            self._scheduler.load_state_dict(resume["scheduler"])
            # Building the scheduler set the rate of step 0; put back the rate the saved run was at.
            for group, lr in zip(self._optimizer.param_groups, self._scheduler.get_last_lr(), strict=True):
                group["lr"] = lr

    def _stop_agreed(self) -> bool:
        """A signal asked this process, or (under torchrun) any rank, to stop: every rank stops at this same step,
        so the saved state is consistent and no rank is left waiting in a collective."""
        if self._agreed is not None:
            requested = self._agreed.stop
        else:
            requested = self.world.all_max(float(self._stop.requested or 0)) if self.world.distributed \
                else self._stop.requested or 0
        if requested:
            self._signal = int(requested)
        return bool(requested)

    def _interrupted(self) -> str:
        """A signal asked to stop: save a resumable state (between steps, where it is consistent)."""
        self._progress.end_epoch()
        if self.state_path is not None:
            self._save_state()
        return INTERRUPTED

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
        if self._agreed is not None:
            return self._agreed.elapsed
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
        totals = reduce_step(self.world, batch, result, self._local_maxima())
        if self.world.distributed:
            self._agreed = _Agreed(*totals.maxima)
        loss, result = totals.loss, totals.result
        if not math.isfinite(loss):
            return False
        (result.loss if totals.scale == 1.0 else result.loss * totals.scale).backward()
        grad_norm = None
        if self.config.clip_norm is not None:
            grad_norm = float(clip_grad_norm(self._parameters, self.config.clip_norm))
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

    def _local_maxima(self) -> tuple[float, ...]:
        """This rank's figures for the decisions after the step, in ``_Agreed``'s order (several ranks only)."""
        if not self.world.distributed:
            return ()
        return (time.monotonic() - self._state.start, float(self._stop.requested or 0), float(self._due_by_clock()))

    def _fit_horizon_to_time(self) -> None:
        """With ``max_time``, end the decay at the step the budget is projected to allow, if that comes first."""
        limit, state = self.config.max_time, self._state
        if limit is None or state.step < HORIZON_MIN_STEPS:
            return
        elapsed = self._elapsed()
        projected = max(state.step + 1, int(state.step * limit / max(elapsed, 1e-9)))
        if state.total_steps is None or projected < state.total_steps:
            self._horizon.total_steps = state.horizon = projected

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
        # Weights that give any non-finite metric are never kept, whatever the monitor says.
        improved = all(math.isfinite(value) for value in metrics.values()) and self._improves(metrics[monitor])
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
