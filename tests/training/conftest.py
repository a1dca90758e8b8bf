"""Tiny tasks for trainer tests: a learnable toy problem and a task with scripted validation scores."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rnnkit.training import StepResult


class ToyTask:
    """Two linearly separable 2-D blobs (label = x0 + x1 > 0), fixed-size shuffled batches.

    Records the model's mode and grad state at each call, so tests can check the trainer's switching.
    """

    monitor = "accuracy"
    mode = "max"

    def __init__(self, n_train: int = 256, n_valid: int = 128, batch_size: int = 32):
        generator = torch.Generator().manual_seed(123)
        x = torch.randn(n_train + n_valid, 2, generator=generator)
        y = (x.sum(dim=1) > 0).long()
        self.train_x, self.train_y = x[:n_train], y[:n_train]
        self.valid_x, self.valid_y = x[n_train:], y[n_train:]
        self.batch_size = batch_size
        self.train_modes: list[tuple[bool, bool]] = []  # (model.training, grad enabled)
        self.eval_modes: list[tuple[bool, bool]] = []
        self.epochs_started: list[int] = []

    def on_epoch_start(self, model, epoch):
        self.epochs_started.append(epoch)

    def train_batches(self, epoch):
        order = torch.randperm(len(self.train_x))  # global RNG: seeded by the trainer
        return [
            (self.train_x[order[i:i + self.batch_size]], self.train_y[order[i:i + self.batch_size]])
            for i in range(0, len(order), self.batch_size)
        ]

    def train_step(self, model, batch):
        self.train_modes.append((model.training, torch.is_grad_enabled()))
        x, y = batch
        logits = model(x)
        correct = int((logits.argmax(dim=1) == y).sum())
        return StepResult(loss=F.cross_entropy(logits, y), tokens=x.numel(), examples=len(y), correct=correct)

    def evaluate(self, model, split):
        self.eval_modes.append((model.training, torch.is_grad_enabled()))
        logits = model(self.valid_x)
        return {
            "accuracy": float((logits.argmax(dim=1) == self.valid_y).float().mean()),
            "loss": float(F.cross_entropy(logits, self.valid_y)),
        }


class ScriptedTask(ToyTask):
    """Trains like ToyTask, but validation returns ``scores`` in order; snapshots weights at each evaluation."""

    def __init__(self, scores, monitor="accuracy", mode="max", **kwargs):
        super().__init__(**kwargs)
        self.scores = list(scores)
        self.monitor, self.mode = monitor, mode
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def evaluate(self, model, split):
        super().evaluate(model, split)
        self.snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {self.monitor: self.scores[len(self.snapshots) - 1]}


def make_mlp(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 2))


@pytest.fixture
def toy_task():
    return ToyTask()


@pytest.fixture
def scripted_task():
    """Factory: ``scripted_task(scores, monitor=..., mode=...)``."""
    return ScriptedTask


@pytest.fixture
def mlp():
    """Factory: ``mlp(seed=0, dropout=0.0)`` -> a 2-16-2 MLP."""
    return make_mlp
